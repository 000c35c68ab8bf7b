//! The plate read queries, fed real API Gateway HTTP API v2 events (`fixtures/*plate_reads*`),
//! against reads stored in moto's DynamoDB by the same adapter plate-ingest uses.

mod common;

use anpr_aws::{
    DynamoCameraRegistry, DynamoPlateReadStore, DynamoRequestStore, IotConfigShadows,
    IotDataPublisher, S3UrlSigner,
};
use anpr_core::model::Camera;
use anpr_core::plates::{IngestPolicy, PlateReadStore, Prepared, prepare};
use anpr_core::{CameraConfigs, FileRequests, OrgId, RequestsConfig};
use anpr_protocol::{CameraId, FileName, PlateRead, ReadId};
use anpr_test_support::moto;
use serde_json::{Value, json};

/// 13:00 UTC on 2025-11-25, the fixtures' time window start.
const T0: u64 = 1_764_086_400_000;

fn fixture(name: &str) -> Value {
    let s = std::fs::read_to_string(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    serde_json::from_str(&s).unwrap()
}

struct Api {
    router: axum::Router,
}

impl Api {
    async fn call(&self, event: Value) -> (u16, Value) {
        common::call(&self.router, event).await
    }
}

fn read(id: &str, t: u64, p: &str) -> PlateRead {
    PlateRead {
        id: ReadId::parse(id).unwrap(),
        t,
        p: p.into(),
        c: 88,
        img: Some(FileName::parse(&format!("reads/{id}.jpg")).unwrap()),
        bb: None,
    }
}

/// A fresh table with reads of camera 123456 (the fixtures') and of a second camera, stored
/// through the production adapter; and the API over it.
async fn api(other: &str) -> Api {
    let clients = moto::clients();
    let table = moto::fresh_table(&clients.dynamo).await;
    let store = DynamoPlateReadStore::new(clients.dynamo.clone(), &table);
    let policy = IngestPolicy::default();
    let now = T0 + 10 * 3_600_000;
    let cam = CameraId::parse("123456").unwrap();
    let acme = OrgId::parse("acme").unwrap();
    let registry = DynamoCameraRegistry::new(clients.dynamo.clone(), &table);
    for id in ["123456", other] {
        registry
            .register(&Camera {
                camera_id: CameraId::parse(id).unwrap(),
                name: None,
                registered_at: 1,
                org: Some(acme.clone()),
                presence: None,
            })
            .await
            .unwrap();
    }
    let stamped = |mut p: Prepared| {
        p.assign_org(Some(&acme));
        p.accepted
    };
    let reads = vec![
        (0, read("a0", T0 - 1, "AB123CD")), // before the fixture's window
        (1, read("a1", T0 + 1_000, "AB123CD")),
        (2, read("a2", T0 + 2_000, "ZZ999")),
        (3, read("a3", T0 + 3_000, "ab 123 cd")),
        (4, read("a4", T0 + 3_600_001, "AB123CD")), // after it
    ];
    store
        .put_reads(&stamped(prepare(&cam, reads, vec![], now, &policy)))
        .await
        .unwrap();
    let other = CameraId::parse(other).unwrap();
    let reads = vec![(0, read("b1", T0 + 2_500, "AB-123-CD"))];
    store
        .put_reads(&stamped(prepare(&other, reads, vec![], now, &policy)))
        .await
        .unwrap();

    let router = request_api::app(request_api::Services {
        requests: FileRequests::new(
            DynamoRequestStore::new(clients.dynamo.clone(), &table),
            DynamoCameraRegistry::new(clients.dynamo.clone(), &table),
            IotDataPublisher::new(clients.iot.clone()),
            RequestsConfig::default(),
        ),
        reads: store,
        configs: CameraConfigs::new(
            DynamoCameraRegistry::new(clients.dynamo.clone(), &table),
            IotConfigShadows::new(clients.iot.clone()),
        ),
        audit: anpr_core::audit::MemoryAuditLog::default(),
        downloads: request_api::Downloads {
            signer: S3UrlSigner::new(clients.s3.clone(), "anpr-media-plates"),
            valid_for_secs: 60,
        },
    });
    Api { router }
}

fn with_query(mut e: Value, qs: &str) -> Value {
    e["rawQueryString"] = json!(qs);
    let map: serde_json::Map<String, Value> =
        serde_urlencoded::from_str::<Vec<(String, String)>>(qs)
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k, json!(v)))
            .collect();
    e["queryStringParameters"] = Value::Object(map);
    e
}

fn ids(body: &Value) -> Vec<String> {
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["read_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_cameras_reads_in_a_time_window_come_newest_first_page_by_page() {
    let api = api("cam-other-1").await;
    let ev = fixture("list_camera_plate_reads.json");
    let (status, first) = api.call(ev.clone()).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(ids(&first), ["a3", "a2"]);
    assert_eq!(first["items"][0]["plate"], "AB123CD");
    assert_eq!(first["items"][0]["plate_raw"], "ab 123 cd");
    assert_eq!(first["items"][0]["img"], "reads/a3.jpg");
    assert_eq!(first["items"][0]["t_ms"], T0 + 3_000);
    let cursor = first["next_cursor"]
        .as_str()
        .expect("a second page")
        .to_owned();
    let qs = format!("from={T0}&to={}&limit=2&cursor={cursor}", T0 + 3_600_000);
    let (status, second) = api.call(with_query(ev.clone(), &qs)).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(ids(&second), ["a1"]);
    if let Some(c) = second["next_cursor"].as_str() {
        // DynamoDB may return a last key on a full page; the page after it is then empty.
        let qs = format!("from={T0}&to={}&limit=2&cursor={c}", T0 + 3_600_000);
        let (status, third) = api.call(with_query(ev, &qs)).await;
        assert_eq!(status, 200, "{third}");
        assert!(ids(&third).is_empty(), "{third}");
    }
}

#[tokio::test]
async fn sightings_of_a_plate_span_cameras_newest_first_whatever_its_spelling() {
    let api = api("cam-other-2").await;
    let ev = fixture("search_plate_reads.json");
    let mut all = Vec::new();
    let (status, mut page) = api.call(ev.clone()).await;
    loop {
        assert_eq!(status, 200, "{page}");
        all.extend(page["items"].as_array().unwrap().iter().map(|i| {
            (
                i["camera_id"].as_str().unwrap().to_owned(),
                i["read_id"].as_str().unwrap().to_owned(),
            )
        }));
        let Some(c) = page["next_cursor"].as_str() else {
            break;
        };
        let (s, p) = api
            .call(with_query(
                ev.clone(),
                &format!("plate=AB123CD&limit=2&cursor={c}"),
            ))
            .await;
        assert_eq!(s, 200, "{p}");
        page = p;
    }
    let cam = "123456".to_owned();
    let other = "cam-other-2".to_owned();
    assert_eq!(
        all,
        [
            (cam.clone(), "a4".to_owned()),
            (cam.clone(), "a3".to_owned()),
            (other, "b1".to_owned()),
            (cam.clone(), "a1".to_owned()),
            (cam, "a0".to_owned()),
        ]
    );
    // The same search narrowed to the window.
    let qs = format!("plate=ab%20123%20cd&from={}&to={}", T0 + 2_000, T0 + 3_000);
    let (status, body) = api.call(with_query(ev, &qs)).await;
    assert_eq!(status, 200);
    assert_eq!(ids(&body), ["a3", "b1"]);
}

#[tokio::test]
async fn bad_parameters_get_400_naming_the_field_and_no_identity_gets_401() {
    let api = api("cam-other-3").await;
    let search = fixture("search_plate_reads.json");
    let list = fixture("list_camera_plate_reads.json");
    for (ev, qs, field) in [
        (&search, "limit=2", "plate"),
        (&search, "plate=%F0%9F%9A%97", "plate"),
        (&search, "plate=AB1&from=soon", "from"),
        (&search, "plate=AB1&from=9&to=8", "from"),
        (&search, "plate=AB1&limit=1000", "limit"),
        (&search, "plate=AB1&cursor=bm90LWEtY3Vyc29y", "cursor"),
        (&list, "cursor=%%%", "cursor"),
    ] {
        let (status, body) = api.call(with_query(ev.clone(), qs)).await;
        assert_eq!(status, 400, "{qs}: {body}");
        assert_eq!(body["error"]["field"], field, "{qs}: {body}");
    }
    let mut bad_cam = list.clone();
    bad_cam["rawPath"] = json!("/cameras/no%20spaces/plate-reads");
    let (status, body) = api.call(bad_cam).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "camera_id");

    let mut anonymous = search;
    anonymous["requestContext"]
        .as_object_mut()
        .unwrap()
        .remove("authorizer");
    let (status, _) = api.call(anonymous).await;
    assert_eq!(status, 401);
}
