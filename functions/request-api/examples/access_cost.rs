//! What the organisation and role checks (and the audit trail and open-request limit) cost per
//! API request, against moto: DynamoDB calls counted by an SDK interceptor on the one client
//! every adapter shares, and the mean latency of each route, `N` calls each (default 200).
//!
//! ```sh
//! # with moto running (scripts/test's environment: ANPR_MOTO_URL, AWS_* variables)
//! cargo run --release -p request-api --example access_cost -- 200
//! ```
//!
//! Before this change the routes made the calls listed as `before` (read from the code of the
//! previous version); `added` is the difference, and the latency ratio is
//! `now / (now - mean latency of the added calls)`, the added calls timed alone on the same
//! moto.

use anpr_aws::{
    DynamoAuditLog, DynamoCameraRegistry, DynamoPlateReadStore, DynamoRequestStore,
    IotConfigShadows, IotDataPublisher,
};
use anpr_core::model::Camera;
use anpr_core::plates::{IngestPolicy, PlateReadStore, prepare};
use anpr_core::ports::{CameraRegistry, RequestStore};
use anpr_core::{Caller, CameraConfigs, FileRequests, OrgId, RequestsConfig, Role};
use anpr_protocol::{CameraId, PlateRead, ReadId};
use anpr_test_support::moto;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_types::config_bag::ConfigBag;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tower::ServiceExt as _;

/// Counts DynamoDB operations (once per operation, not per retry attempt).
#[derive(Debug, Clone, Default)]
struct Count(Arc<AtomicU64>);

impl Intercept for Count {
    fn name(&self) -> &'static str {
        "count-dynamodb-calls"
    }
    fn read_before_execution(
        &self,
        _: &BeforeSerializationInterceptorContextRef<'_>,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

async fn call(app: &axum::Router, caller: &Caller, method: &str, uri: &str, body: &str) -> u16 {
    let mut req = http::Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body.to_owned()))
        .expect("request");
    req.extensions_mut().insert(caller.clone());
    app.clone()
        .oneshot(req)
        .await
        .expect("infallible")
        .status()
        .as_u16()
}

async fn mean<F, Fut>(n: usize, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let t = Instant::now();
    for _ in 0..n {
        f().await;
    }
    t.elapsed() / u32::try_from(n).expect("n fits u32")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let count = Count::default();
    let sdk = moto::sdk_config();
    let dynamo = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk)
            .interceptor(count.clone())
            .build(),
    );
    let iot = moto::clients().iot;
    let table = moto::fresh_table(&dynamo).await;
    let acme = OrgId::parse("acme")?;
    let cam = CameraId::parse(&format!("cost{}", std::process::id()))?;
    let registry = DynamoCameraRegistry::new(dynamo.clone(), &table);
    registry
        .register(&Camera {
            camera_id: cam.clone(),
            name: None,
            registered_at: 1,
            org: Some(acme.clone()),
            presence: None,
        })
        .await?;
    moto::create_thing(cam.as_str()).await;
    let reads = DynamoPlateReadStore::new(dynamo.clone(), &table);
    let now_ms = u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis(),
    )?;
    let batch: Vec<_> = (0..20u64)
        .map(|i| {
            (
                usize::try_from(i).expect("small"),
                PlateRead {
                    id: ReadId::parse(&format!("r{i}")).expect("id"),
                    t: now_ms - 60_000 + i,
                    p: "AB123CD".into(),
                    c: 90,
                    img: None,
                    bb: None,
                },
            )
        })
        .collect();
    let mut p = prepare(&cam, batch, vec![], now_ms, &IngestPolicy::default());
    p.assign_org(Some(&acme));
    reads.put_reads(&p.accepted).await?;
    let config = RequestsConfig {
        max_open_per_camera: u32::MAX,
        ..RequestsConfig::default()
    };
    let requests = DynamoRequestStore::new(dynamo.clone(), &table);
    let service = FileRequests::new(
        requests.clone(),
        registry.clone(),
        IotDataPublisher::new(iot.clone()),
        config,
    );
    let configs = CameraConfigs::new(registry.clone(), IotConfigShadows::new(iot.clone()));
    let app = request_api::app(request_api::Services {
        requests: service,
        reads: reads.clone(),
        configs,
        audit: DynamoAuditLog::new(dynamo.clone(), &table),
        downloads: request_api::Downloads {
            signer: anpr_aws::S3UrlSigner::new(moto::clients().s3, "anpr-media-cost"),
            valid_for_secs: 60,
        },
    });
    let who = |role| Caller {
        sub: "measure".into(),
        org: acme.clone(),
        role,
    };
    let (admin, viewer, operator) = (who(Role::Admin), who(Role::Viewer), who(Role::Operator));
    let c = cam.as_str();
    // One request to read back.
    assert_eq!(
        call(
            &app,
            &operator,
            "POST",
            &format!("/cameras/{c}/file-requests"),
            r#"{"file":"a.mp4"}"#
        )
        .await,
        202
    );
    let id = requests
        .list_by_camera(&cam, 1, None)
        .await?
        .items
        .remove(0)
        .request_id
        .to_string();

    // The added calls alone, timed right after their route (same table state), to price them.
    let audit = DynamoAuditLog::new(dynamo.clone(), &table);
    let price = |added: Added| {
        let (registry, requests, audit, cam, admin) = (&registry, &requests, &audit, &cam, &admin);
        mean(n, move || async move {
            match added {
                Added::None => {}
                Added::GetItem => {
                    registry.get_camera(cam).await.expect("GetItem");
                }
                Added::Query => {
                    // As the route counts with the limit lifted: the whole history.
                    requests
                        .count_open(cam, now_ms / 1000, u32::MAX)
                        .await
                        .expect("Query");
                }
                Added::PutItem => {
                    let r = anpr_core::audit::AuditRecord::new(
                        admin,
                        anpr_core::audit::AuditAction::PlateSearch,
                        "AB123CD",
                        serde_json::json!({}),
                        now_ms,
                        60,
                    );
                    anpr_core::audit::AuditLog::append(audit, &r)
                        .await
                        .expect("PutItem");
                }
            }
        })
    };

    let file_requests = format!("/cameras/{c}/file-requests");
    let plate_reads = format!("/cameras/{c}/plate-reads");
    let one = format!("/file-requests/{id}");
    let cfg = format!("/cameras/{c}/config");
    // (route, method, uri, body, caller, calls before, the added call)
    type Route<'a> = (&'a str, &'a str, &'a str, &'a str, &'a Caller, u64, Added);
    let routes: Vec<Route> = vec![
        (
            "POST file request",
            "POST",
            &file_requests,
            r#"{"file":"a.mp4"}"#,
            &operator,
            2,
            Added::Query,
        ),
        ("GET one request", "GET", &one, "", &viewer, 1, Added::None),
        (
            "GET camera's requests",
            "GET",
            &file_requests,
            "",
            &viewer,
            2,
            Added::None,
        ),
        (
            "GET camera's plate reads",
            "GET",
            &plate_reads,
            "",
            &viewer,
            1,
            Added::GetItem,
        ),
        (
            "GET plate search",
            "GET",
            "/plate-reads?plate=AB123CD",
            "",
            &viewer,
            1,
            Added::PutItem,
        ),
        ("GET config", "GET", &cfg, "", &viewer, 1, Added::None),
        (
            "PUT config",
            "PUT",
            &cfg,
            r#"{"keep_alive_secs":600}"#,
            &admin,
            1,
            Added::PutItem,
        ),
    ];
    println!("N = {n} calls per route; mean latencies against moto");
    println!(
        "| route | DynamoDB calls before | now | added | added call | mean now | added call alone | ratio to before |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (name, method, uri, body, caller, before, added) in routes {
        let start = count.0.load(Ordering::Relaxed);
        let t = mean(n, || async {
            let s = call(&app, caller, method, uri, body).await;
            assert!((200..300).contains(&s), "{name}: {s}");
        })
        .await;
        let calls = (count.0.load(Ordering::Relaxed) - start) as f64 / n as f64;
        let p = price(added).await;
        let ratio = t.as_secs_f64() / (t.as_secs_f64() - p.as_secs_f64());
        println!(
            "| {name} | {before} | {calls:.2} | {:.2} | {added:?} | {:.2} ms | {:.2} ms | {ratio:.2} |",
            calls - before as f64,
            t.as_secs_f64() * 1e3,
            p.as_secs_f64() * 1e3
        );
    }
    Ok(())
}

/// The DynamoDB call a route makes now and did not before.
#[derive(Debug, Clone, Copy)]
enum Added {
    None,
    /// The camera's registry item (organisation).
    GetItem,
    /// The camera's open requests counted (open-request limit, `Select=COUNT`).
    Query,
    /// The audit record.
    PutItem,
}
