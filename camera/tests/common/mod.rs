//! The camera's end-to-end stack: a Mosquitto like IoT Core, the credentials provider
//! stand-in, moto's S3, counting proxies in front of the broker and S3, a media directory, and
//! a "cloud" MQTT client that publishes requests and collects the camera's statuses.
#![allow(dead_code, clippy::unwrap_used)] // test harness: a failed step fails the test

use anpr_camera::Config;
use anpr_camera::config::{MqttSection, RecognizerSection, RemoteSection, UploadSection};
use anpr_protocol::{FileStatus, FileStatusKind, RequestId};
use anpr_test_support::broker::{Broker, CLOUD_IDENTITY, ClientIdentity};
use anpr_test_support::creds::CredsServer;
use anpr_test_support::proxy::Proxy;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::{AsyncClient, Event};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

pub const MIB: usize = 1024 * 1024;

pub struct Stack {
    pub broker: Broker,
    pub creds: CredsServer,
    pub cam: ClientIdentity,
    pub bucket: String,
    pub s3: aws_sdk_s3::Client,
    pub media: tempfile::TempDir,
    pub state: tempfile::TempDir,
    pub mqtt_proxy: Proxy,
    pub s3_proxy: Proxy,
    /// `upload.max_bytes_per_sec`.
    pub max_bytes_per_sec: Option<u64>,
    /// `[remote]`.
    pub remote: RemoteSection,
    /// Frames directory of the `[recognizer]` section ([`Stack::recognizer_section`]).
    pub frames: tempfile::TempDir,
    /// `[recognizer]`; `None`: no frame feed.
    pub recognizer: Option<RecognizerSection>,
    /// `media_quota_bytes`.
    pub media_quota_bytes: Option<u64>,
}

fn moto_port() -> u16 {
    let url = anpr_test_support::moto::url();
    url.rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .expect("ANPR_MOTO_URL has a port")
}

impl Stack {
    pub async fn new(cam: &str) -> Self {
        anpr_test_support::init_crypto();
        let broker = Broker::start();
        let cam = broker.identity(cam);
        broker.identity(CLOUD_IDENTITY);
        let creds = CredsServer::start(&broker, "anpr-camera");
        let s3 = anpr_test_support::moto::clients().s3;
        let bucket = anpr_test_support::unique("media");
        s3.create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .expect("create bucket in moto");
        let mqtt_proxy = Proxy::to_port(broker.port);
        let s3_proxy = Proxy::to_port(moto_port());
        Self {
            broker,
            creds,
            cam,
            bucket,
            s3,
            media: tempfile::tempdir().unwrap(),
            state: tempfile::tempdir().unwrap(),
            mqtt_proxy,
            s3_proxy,
            max_bytes_per_sec: None,
            remote: RemoteSection::default(),
            frames: tempfile::tempdir().unwrap(),
            recognizer: None,
            media_quota_bytes: None,
        }
    }

    /// The agent's configuration: the stand-ins of the stack (the broker and S3 through their
    /// proxies), quick reconnects and retries, plates on `{camera}/plates`.
    pub fn config(&self) -> Config {
        let s3 = format!("http://127.0.0.1:{}", self.s3_proxy.port);
        let local = anpr_test_support::agent_config::AgentConfig {
            camera: &self.cam.cn,
            media: self.media.path(),
            state: self.state.path(),
            mqtt_port: self.mqtt_proxy.port,
            ca: &self.broker.pki.ca_path(),
            cert: &self.cam.cert_path,
            key: &self.cam.key_path,
            bucket: &self.bucket,
            s3_endpoint: &s3,
            creds_port: self.creds.port,
        };
        local
            .builder()
            .mqtt(MqttSection {
                keep_alive_secs: 30,
                reconnect_initial_ms: 200,
                reconnect_max_secs: 2,
                plate_topic: Some(format!("{}/plates", self.cam.cn)),
                ..local.mqtt()
            })
            .upload(UploadSection {
                retry_initial_secs: 1,
                retry_max_secs: 2,
                max_bytes_per_sec: self.max_bytes_per_sec,
                ..local.upload()
            })
            .remote(self.remote.clone())
            .media_quota_bytes(self.media_quota_bytes)
            .recognizer(self.recognizer.clone())
            .build()
            .expect("test config is valid")
    }

    /// A `[recognizer]` section watching the stack's frames directory, settings at their
    /// defaults.
    pub fn recognizer_section(&self) -> RecognizerSection {
        RecognizerSection::new(self.frames.path())
    }

    /// [`Stack::config`] written as the agent's file in the state directory.
    pub fn write_config(&self) -> PathBuf {
        let p = self.state.path().join("camera.toml");
        anpr_test_support::agent_config::write(&self.config(), &p);
        p
    }

    /// A file of `len` pseudo-random bytes in the media directory.
    pub fn media_file(&self, name: &str, len: usize) -> Vec<u8> {
        let mut x: u64 = 0x2545_F491_4F6C_DD1D ^ len as u64;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.to_le_bytes()[0]
            })
            .collect();
        let path = self.media.path().join(name);
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(path, &bytes).unwrap();
        bytes
    }

    pub fn key(&self, id: &str, file: &str) -> String {
        format!("media/{}/{id}/{file}", self.cam.cn)
    }

    pub async fn object(&self, key: &str) -> Option<Vec<u8>> {
        let o = self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .ok()?;
        Some(o.body.collect().await.ok()?.into_bytes().to_vec())
    }

    pub async fn cloud(&self) -> Cloud {
        Cloud::connect(&self.broker, &self.cam.cn).await
    }
}

/// The agent running in this process.
pub struct Running {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), anpr_camera::agent::AgentError>>,
}

impl Running {
    pub fn start(cfg: Config) -> Self {
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(
            anpr_camera::agent::Agent::builder(cfg).run(anpr_camera::agent::Shutdown::new(rx)),
        );
        Self { stop, task }
    }
    pub fn is_running(&self) -> bool {
        !self.task.is_finished()
    }
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        tokio::time::timeout(Duration::from_secs(90), self.task)
            .await
            .expect("agent stops in time")
            .expect("agent task")
            .expect("agent result");
    }
}

/// The cloud side: publishes requests, collects the camera's statuses and health reports.
pub struct Cloud {
    pub client: AsyncClient,
    cam: String,
    /// PUBACKs the broker sent for the cloud's own publishes.
    pubacks: watch::Receiver<u64>,
    rx: mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    pub seen: Vec<FileStatus>,
    pub health: Vec<Vec<u8>>,
    pub presence: Vec<Vec<u8>>,
    pub plates: Vec<Vec<u8>>,
}

impl Cloud {
    pub async fn connect(broker: &Broker, cam: &str) -> Self {
        let id = broker.identity(CLOUD_IDENTITY);
        let mut o = broker.v5_options(&id);
        o.set_client_id(anpr_test_support::unique("cloud"));
        // A persistent session: what arrives while it reconnects waits for it.
        o.set_clean_start(false);
        o.set_session_expiry_interval(Some(3600));
        let (client, mut ev) = AsyncClient::new(o, 64);
        let (tx, rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let mut ready = Some(ready_tx);
        let (puback_tx, pubacks) = watch::channel(0u64);
        let filters = ["file/status", "health", "presence", "plates"].map(|t| {
            rumqttc::v5::mqttbytes::v5::Filter::new(format!("{cam}/{t}"), QoS::AtLeastOnce)
        });
        let subscriber = client.clone();
        tokio::spawn(async move {
            loop {
                match ev.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                        if !ack.session_present {
                            let _ = subscriber.subscribe_many(filters.clone()).await;
                        }
                    }
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        puback_tx.send_modify(|n| *n += 1);
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(r) = ready.take() {
                            let _ = r.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let t = String::from_utf8_lossy(&p.topic).into_owned();
                        if tx.send((t, p.payload.to_vec())).is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        eprintln!("test cloud: connection lost ({e}); reconnecting");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), ready_rx)
            .await
            .expect("cloud subscribed")
            .unwrap();
        Self {
            client,
            cam: cam.to_owned(),
            pubacks,
            rx,
            seen: Vec::new(),
            health: Vec::new(),
            presence: Vec::new(),
            plates: Vec::new(),
        }
    }

    /// Publishes a request and returns once the broker has it (its PUBACK).
    pub async fn request_raw(&self, payload: impl Into<Vec<u8>>) {
        let mut acks = self.pubacks.clone();
        let before = *acks.borrow_and_update();
        self.client
            .publish(
                format!("{}/file/request", self.cam),
                QoS::AtLeastOnce,
                false,
                payload.into(),
            )
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(10), acks.wait_for(|n| *n > before))
            .await
            .expect("the broker acknowledged the request")
            .unwrap();
    }

    pub async fn request(&self, id: &str, file: &str) {
        let now = anpr_protocol::clock::now_secs();
        self.request_raw(format!(
            r#"{{"v":1,"id":"{id}","file":"{file}","at":{now},"exp":{}}}"#,
            now + 3600
        ))
        .await;
    }

    fn take(&mut self, topic: String, payload: Vec<u8>) {
        if topic.ends_with("/health") {
            self.health.push(payload);
        } else if topic.ends_with("/plates") {
            self.plates.push(payload);
        } else if topic.ends_with("/presence") {
            self.presence.push(payload);
        } else {
            // Only statuses are left: one the protocol cannot read is a failure, not noise.
            match anpr_protocol::decode::<FileStatus>(&payload) {
                Ok(s) => self.seen.push(s),
                Err(e) => panic!(
                    "undecodable message on {topic}: {e}: {}",
                    String::from_utf8_lossy(&payload)
                ),
            }
        }
    }

    /// Waits for a status of request `id` matching `pred`; returns it.
    pub async fn wait_status(
        &mut self,
        id: &str,
        secs: u64,
        pred: impl Fn(&FileStatusKind) -> bool,
    ) -> FileStatusKind {
        let id = RequestId::parse(id).unwrap();
        if let Some(s) = self.seen.iter().find(|s| s.id == id && pred(&s.kind)) {
            return s.kind.clone();
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some((t, p))) => {
                    self.take(t, p);
                    let last = self.seen.last().cloned();
                    if let Some(s) = last
                        && s.id == id
                        && pred(&s.kind)
                    {
                        return s.kind;
                    }
                }
                _ => panic!(
                    "no matching status for {id} within {secs} s; seen: {:?}",
                    self.seen
                ),
            }
        }
    }

    /// Waits for the next health report.
    pub async fn wait_health(&mut self, secs: u64) -> Vec<u8> {
        let n = self.health.len();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        while self.health.len() == n {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some((t, p))) => self.take(t, p),
                _ => panic!("no health report within {secs} s"),
            }
        }
        self.health.last().cloned().unwrap()
    }

    /// Collects whatever arrives for `d`.
    pub async fn collect_for(&mut self, d: Duration) {
        let deadline = tokio::time::Instant::now() + d;
        while let Ok(Some((t, p))) = tokio::time::timeout_at(deadline, self.rx.recv()).await {
            self.take(t, p);
        }
    }

    /// Collects whatever arrives for `secs` seconds.
    pub async fn drain(&mut self, secs: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        while let Ok(Some((t, p))) = tokio::time::timeout_at(deadline, self.rx.recv()).await {
            self.take(t, p);
        }
    }

    /// Collects messages until `done` holds, failing after `secs` seconds with `what`.
    pub async fn wait_until(&mut self, secs: u64, what: &str, done: impl Fn(&Self) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        while !done(self) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what} not seen within {secs} s; statuses: {:?}",
                self.seen
            );
            let step = tokio::time::Instant::now() + Duration::from_millis(100);
            if let Ok(Some((t, p))) =
                tokio::time::timeout_at(step.min(deadline), self.rx.recv()).await
            {
                self.take(t, p);
            }
        }
    }

    /// The ids of every plate read received, in arrival order (a redelivered batch twice).
    pub fn plate_ids(&self) -> Vec<String> {
        self.plates
            .iter()
            .flat_map(|p| {
                anpr_protocol::decode::<anpr_protocol::PlateReadBatch>(p)
                    .expect("a plate batch")
                    .r
            })
            .map(|r| r.id.to_string())
            .collect()
    }

    pub fn statuses_of(&self, id: &str) -> Vec<FileStatusKind> {
        let id = RequestId::parse(id).unwrap();
        self.seen
            .iter()
            .filter(|s| s.id == id)
            .map(|s| s.kind.clone())
            .collect()
    }
}

pub fn is_uploaded(k: &FileStatusKind) -> bool {
    matches!(k, FileStatusKind::Uploaded { .. })
}

/// Starts the `anpr-camera` binary `bin` as `run --config` on the stack's configuration, its
/// output in `{state_dir}/{log}`, with `RUST_LOG=rust_log` and `env` added.
pub fn spawn_agent(
    stack: &Stack,
    bin: &str,
    log: &str,
    rust_log: &str,
    env: &[(&str, &str)],
) -> std::process::Child {
    let cfg = stack.write_config();
    let log = std::fs::File::create(stack.state.path().join(log)).expect("log file");
    std::process::Command::new(bin)
        .args(["run", "--config"])
        .arg(cfg)
        .envs(env.iter().copied())
        .env("RUST_LOG", rust_log)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().expect("log file"))
        .stderr(log)
        .spawn()
        .expect("start anpr-camera")
}

/// Sends SIGTERM to `agent` and waits for it to exit, failing after `secs` seconds.
pub async fn sigterm_and_wait(
    agent: &mut std::process::Child,
    secs: u64,
) -> std::process::ExitStatus {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &agent.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(s) = agent.try_wait().unwrap() {
            return s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the agent did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The processes `pid` started (the frame feed), from `/proc/{pid}/task/*/children`.
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|s| {
            s.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// Fields of /proc/{pid}/status, in KiB (0 when absent), read at one instant.
pub fn status_kib<const N: usize>(pid: u32, keys: [&str; N]) -> [u64; N] {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    keys.map(|k| {
        s.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    })
}
