//! `anpr-local`: the local stand-in for the AWS infrastructure. One process, embedded
//! defaults only, no AWS account, no Docker:
//!
//! | AWS | here |
//! |---|---|
//! | IoT Core (MQTT, mutual TLS) | embedded rumqttd: MQTT 5 over TLS with client certificates of a CA generated on first run ([`broker`], [`pki`]) |
//! | IoT Core MQTT over WSS (web clients) | the same broker's MQTT 3.1.1 over WebSocket listener |
//! | IoT data plane `Publish` | an in-process broker link ([`broker::LinkPublisher`]) |
//! | IoT rules → file-status, plate-ingest Lambdas | broker link → the functions' own `handle` ([`rules`]) |
//! | S3 + ObjectCreated → upload-completed Lambda | s3s-fs on the data folder, wrapped to emit events → `upload_completed::handle` ([`s3`]) |
//! | IoT credentials provider | mutual-TLS HTTPS stand-in ([`creds`]) |
//! | IoT Device Shadow service (named shadow `config`) | the shadow service of `anpr_stand_ins::shadow` on the broker's `$aws/things/…` topics, documents in the database, and behind `GET/PUT /cameras/{id}/config` ([`shadow`]) |
//! | DynamoDB | an append-only, fsynced log replayed at start ([`store`]) |
//! | Cognito user pool | a local token issuer: ES256 ID tokens for the demo users, key generated on first run ([`tokens`]) |
//! | API Gateway (JWT authorizer) + request-api Lambda | `request_api::app` over local HTTP; `Authorization: Bearer` tokens verified by [`tokens`] and mapped to the caller by the cloud's mapping |
//! | the web console (S3/CloudFront) | the same HTTP port ([`console`]) |
//! | cameras | the real `anpr-camera` agent, simulated over generated media ([`cameras`]) |
//!
//! The CA ([`pki`]), the credentials provider ([`creds`]) and the shadow service's rules are
//! the crate `anpr-stand-ins`, shared with the tests' harness.
//!
//! Everything lives under one data folder (`--data-dir`, default `.local/anpr-local`);
//! `--reset` deletes it first.
//!
//! # Layout
//! - [`broker`]: the embedded rumqttd (cameras' TLS listener, the web's WebSocket listener,
//!   in-process links).
//! - [`web_access`]: what a browser may do on the WebSocket listener (the web authorizer's
//!   policy, locally).
//! - [`presence_events`]: AWS IoT's lifecycle events from the broker's connects and
//!   disconnects.
//! - [`rules`]: the IoT rules and the schedule, wired to the functions' own handlers.
//! - [`s3`]: the S3 stand-in (s3s-fs) and its ObjectCreated notifications.
//! - [`shadow`]: the device shadow service over the local database.
//! - [`store`]: the local database (an fsynced JSON-lines log).
//! - [`tokens`]: the Cognito user pool and JWT authorizer stand-in.
//! - [`hosted_ui`]: the Cognito hosted UI stand-in (authorization code flow with PKCE).
//! - [`console`]: the web console's files and `config.json`.
//! - [`cameras`]: the simulated cameras running the real agent.
//! - `pki`, `creds`: re-exported from `anpr-stand-ins`.
//! - `src/main.rs`: the `anpr-local` program (arguments, start, stop).

pub mod broker;
pub mod cameras;
pub mod console;
pub mod hosted_ui;
pub mod presence_events;
pub mod rules;
pub mod s3;
pub mod shadow;
pub mod store;
pub mod tokens;
pub mod web_access;

/// The local CA and the credentials provider: the stand-ins shared with the tests.
pub use anpr_stand_ins::{creds, pki};

use anpr_core::model::{Camera, CameraPresence};
use anpr_core::plates::IngestPolicy;
use anpr_core::presence::Presences;
use anpr_core::status::{StatusConfig, StatusUpdates};
use anpr_core::{Caller, FileRequests, RequestsConfig};
use anpr_protocol::CameraId;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::watch;

/// The stack could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A folder or port could not be used.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A folder given as a relative path (the `anpr-local` command resolves them first).
    #[error(
        "{what} must be an absolute path (the anpr-local command resolves a relative one against the current directory): {path}"
    )]
    RelativePath {
        /// Which option.
        what: &'static str,
        /// The path given.
        path: std::path::PathBuf,
    },
    /// The local CA.
    #[error("local CA")]
    Pki(#[from] pki::PkiError),
    /// The database log.
    #[error("database")]
    Db(#[from] store::OpenError),
    /// The database refused a write.
    #[error("database write")]
    Store(#[from] anpr_core::StoreError),
    /// The S3 store.
    #[error("S3 store")]
    S3(#[from] s3::StoreOpenError),
    /// The credentials provider stand-in.
    #[error("credentials provider")]
    Creds(#[from] creds::CredsError),
    /// The broker.
    #[error("MQTT broker")]
    Broker(#[from] broker::BrokerError),
    /// A simulated camera.
    #[error("simulated camera")]
    Camera(#[from] cameras::CameraSetupError),
    /// The local token issuer.
    #[error("token issuer")]
    Tokens(#[from] tokens::TokenError),
    /// A camera id given is not valid.
    #[error("camera id {0:?} is not valid")]
    CameraId(String),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> StartError {
    let what = what.into();
    move |source| StartError::Io { what, source }
}

/// The media bucket's name.
pub const BUCKET: &str = "anpr-media";
/// The credentials provider role alias.
pub const ROLE_ALIAS: &str = "anpr-camera";
/// The subject CN of the local CA.
pub const LOCAL_CA: &str = "anpr-local CA (generated on this machine)";
/// The demo user the console signs in as unless another is picked (an admin of `acme`).
pub const DEMO_USER: &str = "ada";

/// What to start.
#[derive(Debug, Clone)]
pub struct Options {
    /// The data folder.
    pub data_dir: PathBuf,
    /// HTTP address of the request API and the console (port 0: any free port).
    pub http: SocketAddr,
    /// MQTT 5 over TLS port for cameras (0: any free port).
    pub mqtt_port: u16,
    /// MQTT over WebSocket port for the console (0: any free port).
    pub ws_port: u16,
    /// The MQTT-over-WebSocket URL the console is told to use, when browsers reach the
    /// listener through something else (a reverse proxy, a forwarded port); `None`: the
    /// listener's own `ws://{host}:{ws_port}/mqtt`.
    pub console_ws_url: Option<String>,
    /// The console's MQTT keep-alive in seconds ([`console::DEFAULT_KEEPALIVE_SECS`]).
    pub console_keepalive_secs: u16,
    /// S3 port (0: any free port).
    pub s3_port: u16,
    /// Credentials provider port (0: any free port).
    pub creds_port: u16,
    /// Simulated camera ids.
    pub cameras: Vec<String>,
    /// Seconds between simulated plate reads (or, with the `recognizer` feature, frames) per
    /// camera (0: none).
    pub plate_interval_secs: u64,
    /// With the `recognizer` feature: the recognizer's model folder (`scripts/fetch-models`
    /// puts them in `.local/models`); the cameras then read plates from frames.
    pub models_dir: Option<PathBuf>,
}

impl Options {
    /// Every port free, one camera, the given data folder: for tests.
    pub fn ephemeral(data_dir: PathBuf) -> Self {
        Self {
            data_dir,
            http: SocketAddr::from(([127, 0, 0, 1], 0)),
            mqtt_port: 0,
            ws_port: 0,
            console_ws_url: None,
            console_keepalive_secs: console::DEFAULT_KEEPALIVE_SECS,
            s3_port: 0,
            creds_port: 0,
            cameras: vec!["cam-001".into()],
            plate_interval_secs: 2,
            models_dir: None,
        }
    }
}

/// The running stack.
#[derive(Debug)]
pub struct Running {
    /// The console, e.g. `http://127.0.0.1:8080/`.
    pub console_url: String,
    /// Base URL of the request API (same origin as the console).
    pub api_url: String,
    /// The MQTT-over-WebSocket listener's URL (the console's, unless
    /// [`Options::console_ws_url`] names another).
    pub ws_url: String,
    /// S3 endpoint.
    pub s3_url: String,
    /// MQTT 5 over TLS port.
    pub mqtt_port: u16,
    /// The data folder.
    pub data_dir: PathBuf,
    /// The database (for tests and diagnostics).
    pub db: store::LocalDb,
    /// The PKI (to connect as a camera in tests).
    pub pki: pki::Pki,
    camera_ids: Vec<String>,
    shadows: shadow::LocalShadows,
    shutdown: watch::Sender<bool>,
    cameras: Vec<tokio::task::JoinHandle<()>>,
    services: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Waits until every simulated camera has subscribed to its topics (it then asks for its
    /// configuration shadow: [`shadow::LocalShadows::heard_from`]); `false` if that did not
    /// happen within `timeout`. A file request published before a camera's first
    /// subscription is lost, as it would be on AWS IoT.
    pub async fn cameras_ready(&self, timeout: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.camera_ids.iter().all(|c| self.shadows.heard_from(c)) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Stops the simulated cameras gracefully and the HTTP, S3, credentials and rule tasks.
    /// (rumqttd has no shutdown: its listener threads end with the process.)
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for c in self.cameras {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), c).await;
        }
        for s in self.services {
            s.abort();
        }
    }
}

async fn bind(addr: SocketAddr) -> Result<(tokio::net::TcpListener, u16), StartError> {
    let l = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(io_err(format!("binding {addr}")))?;
    let port = l.local_addr().map_err(io_err("local address"))?.port();
    Ok((l, port))
}

/// `port` if it is free (checked, so that the broker does not silently share it with another
/// process), or any free port for 0.
fn free_port(port: u16) -> Result<u16, StartError> {
    if port != 0 {
        std::net::TcpListener::bind(("127.0.0.1", port)).map_err(io_err(format!(
            "port {port} (in use? see --help for the port options)"
        )))?;
        return Ok(port);
    }
    let l = std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(io_err("finding a free port"))?;
    Ok(l.local_addr().map_err(io_err("local address"))?.port())
}

/// The credentials the credentials provider hands out and the S3 stand-in checks: generated on
/// the first start and kept owner-only in the data folder (`creds/issued.json`; nothing secret
/// is ever committed). They outlive a restart because the S3 stand-in (s3s-fs) binds a
/// multipart upload to the access key that created it, which AWS does not: new keys at each
/// start refused every upload resumed across a restart (`AccessDenied` on `UploadPart`).
fn local_credentials(data: &Path) -> Result<creds::Issued, StartError> {
    let dir = data.join("creds");
    std::fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
    let path = dir.join("issued.json");
    if let Ok(bytes) = std::fs::read(&path)
        && let Ok(issued) = serde_json::from_slice::<creds::Issued>(&bytes)
    {
        // Written before it was owner-only, or copied: tightened.
        pki::write_secret(&path, &bytes)?;
        return Ok(issued);
    }
    let issued = creds::Issued {
        access_key_id: format!("ASIALOCAL{}", random_token(11)),
        secret_access_key: random_token(40),
    };
    let bytes = serde_json::to_vec(&issued).map_err(|e| StartError::Io {
        what: "encoding the local credentials".into(),
        source: std::io::Error::other(e),
    })?;
    pki::write_secret(&path, &bytes)?;
    Ok(issued)
}

fn random_token(len: usize) -> String {
    use rand::Rng as _;
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(A[rng.random_range(0..A.len())]))
        .collect()
}

/// API Gateway's JWT authorizer, locally: a request with `Authorization: Bearer {token}` is
/// answered `401` unless the token verifies, and `403` unless its claims make a caller; the
/// caller is then handed to the request API. A request without the header goes on without a
/// caller (the console's files; the API's routes answer `401`).
async fn verify_token(
    axum::extract::State(issuer): axum::extract::State<Arc<tokens::Issuer>>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let Some(h) = req.headers().get(axum::http::header::AUTHORIZATION) else {
        return next.run(req).await;
    };
    let token = h
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let claims = match token.map(|t| issuer.verify(t, anpr_protocol::clock::now_secs())) {
        Some(Ok(c)) => c,
        Some(Err(e)) => {
            tracing::info!(error = %e, "token refused");
            return request_api::ApiError::Unauthorized.into_response();
        }
        None => return request_api::ApiError::Unauthorized.into_response(),
    };
    match tokens::caller(&claims) {
        Ok(caller) => {
            req.extensions_mut().insert::<Caller>(caller);
            next.run(req).await
        }
        Err(e) => request_api::ApiError::from(e).into_response(),
    }
}

/// `POST /local/token {"user":"ada"}` → `{"token","user","org","role","notifications_topic"}`:
/// signs a token for a demo user. Exists only in the local stack, for scripts and tests (the
/// console signs in through [`hosted_ui`], as it signs in to Cognito in AWS).
fn token_route(issuer: Arc<tokens::Issuer>) -> axum::Router {
    use axum::response::IntoResponse as _;
    axum::Router::new().route(
        "/local/token",
        axum::routing::post(move |body: axum::body::Bytes| {
            let issuer = issuer.clone();
            async move {
                let user = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v.get("user").and_then(|u| u.as_str()).map(str::to_owned))
                    .unwrap_or_default();
                let Some(u) = tokens::demo_user(&user) else {
                    return request_api::ApiError::BadRequest {
                        message: "user must be one of the demo users: ada, otto, vic, gil".into(),
                        field: Some("user"),
                    }
                    .into_response();
                };
                match issuer.token_for(u.name, anpr_protocol::clock::now_secs()) {
                    Ok(token) => axum::Json(serde_json::json!({
                        "token": token,
                        "user": u.name,
                        "org": u.org,
                        "role": u.role.as_str(),
                        "notifications_topic": anpr_protocol::topics::org_notifications(u.org),
                    }))
                    .into_response(),
                    Err(e) => {
                        tracing::error!(error = %e, "signing a token failed");
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response()
                    }
                }
            }
        }),
    )
}

/// Deletes the data folder (`--reset`).
pub fn reset(data_dir: &std::path::Path) -> Result<(), StartError> {
    match std::fs::remove_dir_all(data_dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(format!("deleting {}", data_dir.display()))(e)),
    }
}

/// Starts everything; returns once the console can be opened.
pub async fn start(opts: Options) -> Result<Running, StartError> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let data = opts.data_dir.clone();
    if !data.is_absolute() {
        return Err(StartError::RelativePath {
            what: "data_dir",
            path: data,
        });
    }
    if let Some(m) = opts.models_dir.as_ref().filter(|m| !m.is_absolute()) {
        return Err(StartError::RelativePath {
            what: "models_dir",
            path: m.clone(),
        });
    }
    std::fs::create_dir_all(&data).map_err(io_err(format!("creating {}", data.display())))?;
    let pki = pki::Pki::open(&data.join("pki"), LOCAL_CA)?;
    let db = store::LocalDb::open(&data.join("db").join("anpr.log")).await?;

    let issued = local_credentials(&data)?;

    // S3 on the data folder.
    let s3_root = data.join("s3");
    std::fs::create_dir_all(s3_root.join(BUCKET)).map_err(io_err("creating the bucket folder"))?;
    let (s3_listener, s3_port) = bind(SocketAddr::from(([127, 0, 0, 1], opts.s3_port))).await?;
    let s3_url = format!("http://127.0.0.1:{s3_port}");
    let (created_tx, created_rx) = tokio::sync::mpsc::unbounded_channel();
    let fs = s3::NotifyingFs::new(s3_root, created_tx)?;
    let mut b = s3s::service::S3ServiceBuilder::new(fs);
    b.set_auth(s3s::auth::SimpleAuth::from_single(
        issued.access_key_id.clone(),
        issued.secret_access_key.clone(),
    ));
    let s3_service = b.build();

    // Credentials provider.
    let (creds_listener, creds_port) =
        bind(SocketAddr::from(([127, 0, 0, 1], opts.creds_port))).await?;
    let acceptor = creds::acceptor(&pki)?;

    // The console's origin and the token issuer: the WebSocket listener admits browsers with
    // them.
    let issuer = Arc::new(tokens::Issuer::open(&data)?);
    let (http_listener, http_port) = bind(opts.http).await?;
    let host = match opts.http.ip() {
        ip if ip.is_unspecified() => "127.0.0.1".to_owned(),
        ip => ip.to_string(),
    };
    let console_url = format!("http://{host}:{http_port}/");

    // The console as the ready line names it, and as `localhost` for the loopback: the origins
    // the WebSocket listener admits and the hosted UI's callback URLs.
    let console_origins = if opts.http.ip().is_loopback() || opts.http.ip().is_unspecified() {
        vec![
            format!("http://{host}:{http_port}"),
            format!("http://localhost:{http_port}"),
        ]
    } else {
        vec![format!("http://{host}:{http_port}")]
    };
    // Broker, with links for the data-plane publisher and the rules, telling its connections
    // and disconnections as lifecycle events.
    let (lifecycle, lifecycle_changes) = presence_events::hook();
    let mqtt_port = free_port(opts.mqtt_port)?;
    let ws_port = free_port(opts.ws_port)?;
    let mut links = broker::start(
        &broker::BrokerSettings {
            mqtt_tls: SocketAddr::from(([127, 0, 0, 1], mqtt_port)),
            ws: SocketAddr::from(([127, 0, 0, 1], ws_port)),
            ca: pki.ca_path().display().to_string(),
            cert: pki.server_cert().display().to_string(),
            key: pki.server_key().display().to_string(),
            console_origins: console_origins.clone(),
            web: web_access::WebAccess::new(issuer.clone()),
            lifecycle,
        },
        &[
            broker::DATA_PLANE_LINK,
            "anpr-local-iot-rules",
            "anpr-local-shadows",
        ],
    )
    .await?
    .into_iter();
    let (Some((pub_tx, pub_rx)), Some((rules_tx, rules_rx)), Some((shadow_tx, shadow_rx))) =
        (links.next(), links.next(), links.next())
    else {
        return Err(StartError::Broker(broker::BrokerError::Listener(
            SocketAddr::from(([127, 0, 0, 1], mqtt_port)),
        )));
    };
    let publisher = broker::LinkPublisher::new(pub_tx);

    // The functions' services, as their mains build them, on the local adapters.
    let s3_client = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::new()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .endpoint_url(&s3_url)
            .force_path_style(true)
            .credentials_provider(aws_credential_types::Credentials::new(
                issued.access_key_id.clone(),
                issued.secret_access_key.clone(),
                None,
                None,
                "anpr-local",
            ))
            .build(),
    );
    let signer = anpr_aws::S3UrlSigner::new(s3_client, BUCKET);
    let downloads = request_api::Downloads {
        signer: signer.clone(),
        valid_for_secs: StatusConfig::default().download_url_secs,
    };
    let status = Arc::new(StatusUpdates::new(
        db.clone(),
        publisher.clone(),
        signer,
        StatusConfig::default(),
    ));
    let presences = Arc::new(Presences::new(db.clone(), publisher.clone()));
    // The broker just started: no connection recorded before survives it. The cameras seen
    // connected go offline (through the service, as their disconnect would), and come back
    // online when they reconnect, with newer version numbers.
    for c in db.cameras() {
        if let Some(p) = c.presence.filter(|p| p.online) {
            let gone = CameraPresence {
                online: false,
                at_ms: anpr_protocol::clock::now_ms(),
                version: p.version,
            };
            if let Err(e) = presences.apply(&c.camera_id, gone).await {
                tracing::warn!(camera = %c.camera_id, error = %e, "marking a camera offline failed");
            }
        }
    }
    let requests = FileRequests::new(
        db.clone(),
        db.clone(),
        publisher.clone(),
        RequestsConfig::default(),
    );

    // Demo data: the demo organisations' cameras and the simulated ones, each with its
    // organisation (also given to a camera registered before organisations existed).
    let demo = tokens::DEMO_CAMERAS
        .iter()
        .map(|(id, org)| (id.to_string(), *org))
        .chain(opts.cameras.iter().map(|id| {
            let org = tokens::DEMO_CAMERAS
                .iter()
                .find(|(c, _)| c == id)
                .map_or(tokens::DEFAULT_ORG, |(_, o)| *o);
            (id.clone(), org)
        }));
    for (id, org) in demo {
        let camera_id = CameraId::parse(&id).map_err(|_| StartError::CameraId(id.clone()))?;
        let existing = anpr_core::ports::CameraRegistry::get_camera(&db, &camera_id).await?;
        if existing.as_ref().is_none_or(|c| c.org.is_none()) {
            let simulated = opts.cameras.contains(&id);
            db.register_camera(Camera {
                camera_id,
                name: Some(if simulated {
                    format!("simulated camera {id}")
                } else {
                    format!("{id} (registered, not simulated)")
                }),
                registered_at: anpr_protocol::clock::now_secs(),
                org: Some(
                    anpr_core::OrgId::parse(org).map_err(|_| StartError::CameraId(id.clone()))?,
                ),
                presence: None,
            })
            .await?;
        }
    }

    let ws_url = format!("ws://{host}:{ws_port}/mqtt");
    let console_cfg = console::ConsoleConfig {
        api_url: String::new(),
        mqtt_url: opts
            .console_ws_url
            .clone()
            .unwrap_or_else(|| ws_url.clone()),
        mqtt_keepalive_secs: opts.console_keepalive_secs,
        auth: console::ConsoleAuth {
            domain_url: hosted_ui::DOMAIN_PATH.into(),
            client_id: tokens::AUDIENCE.into(),
            authorizer: String::new(),
        },
        sample_files: vec![cameras::CLIP.into(), cameras::IMAGE.into()],
    };
    let shadows = shadow::LocalShadows::new(db.clone(), publisher.clone());
    let configs = anpr_core::CameraConfigs::new(db.clone(), shadows.clone());
    let shadows_handle = shadows.clone();
    let api = request_api::Services {
        requests,
        reads: db.clone(),
        configs,
        audit: db.clone(),
        downloads,
    };
    let app = request_api::app(api)
        .merge(console::routes(console_cfg))
        .merge(token_route(issuer.clone()))
        .merge(hosted_ui::routes(hosted_ui::HostedUi::new(
            issuer.clone(),
            console_origins.iter().map(|o| format!("{o}/")).collect(),
        )))
        .layer(axum::middleware::from_fn_with_state(
            issuer.clone(),
            verify_token,
        ));

    let mut services = vec![
        tokio::spawn(s3::serve(s3_listener, s3_service)),
        tokio::spawn(rules::drain(pub_rx)),
        tokio::spawn(shadow::run_device_side(
            shadow_tx,
            shadow_rx,
            shadows.clone(),
        )),
        tokio::spawn(
            Arc::new(creds::CredsProvider::new(pki.clone(), ROLE_ALIAS, issued))
                .serve(creds_listener, acceptor),
        ),
        tokio::spawn(presence_events::run(lifecycle_changes, publisher.clone())),
        tokio::spawn(rules::run_iot_rules(
            rules_tx,
            rules_rx,
            status.clone(),
            presences,
            db.clone(),
            IngestPolicy::default(),
        )),
        tokio::spawn(rules::run_expiry_sweep(status.clone())),
        tokio::spawn(rules::run_s3_notifications(
            created_rx,
            status,
            BUCKET.into(),
        )),
    ];
    services.push(tokio::spawn(async move {
        if let Err(e) = axum::serve(http_listener, app).await {
            tracing::error!(error = %e, "HTTP server stopped");
        }
    }));

    // Simulated cameras.
    let media = data.join("media");
    cameras::ensure_media(&media)?;
    let env = cameras::CameraEnv {
        mqtt_port,
        s3_endpoint: s3_url.clone(),
        bucket: BUCKET.into(),
        creds_port,
        role_alias: ROLE_ALIAS.into(),
        media,
        plate_interval_secs: opts.plate_interval_secs,
        models_dir: opts.models_dir.clone(),
    };
    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut camera_tasks = Vec::new();
    for id in &opts.cameras {
        let camera = CameraId::parse(id).map_err(|_| StartError::CameraId(id.clone()))?;
        let cfg = cameras::agent_config(&camera, &data.join("cameras").join(id), &pki, &env)?;
        camera_tasks.push(cameras::spawn(
            cfg,
            env.plate_interval_secs,
            shutdown_rx.clone(),
        )?);
    }

    Ok(Running {
        api_url: console_url.trim_end_matches('/').to_owned(),
        console_url,
        ws_url,
        s3_url,
        mqtt_port,
        data_dir: data,
        db,
        pki,
        camera_ids: opts.cameras.clone(),
        shadows: shadows_handle,
        shutdown,
        cameras: camera_tasks,
        services,
    })
}
