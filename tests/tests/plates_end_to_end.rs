//! Plate reads end to end: the camera agent's own outbox publisher
//! (`anpr_camera::agent::Agent` with the test's outbox) → MQTT through the real Mosquitto (Basic Ingest
//! topic, camera certificate) → a `cloud-backend` subscriber that routes the rule topic to the
//! plate-ingest handler the way the IoT rule does (`topic(1)` as camera id, payload base64) →
//! moto's DynamoDB. Every read must be there exactly once after an offline period, a kill -9 of
//! the agent's process in the middle of publishing and a broker restart while it publishes.

use anpr_aws::{DynamoCameraRegistry, DynamoPlateReadStore};
use anpr_camera::agent::OutboxHandle;
use anpr_camera::outbox::{Outbox, OutboxConfig, SyncPolicy};
use anpr_core::plates::{IngestPolicy, PlateReadStore, TimeRange};
use anpr_protocol::{CameraId, PlateRead, ReadId, topics};
use anpr_test_support::broker::{Broker, CLOUD_IDENTITY};
use anpr_test_support::plates::{fresh_store, rule_event, stored_ids};
use plate_ingest::IngestReport;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Packet, PubAckReason};
use rumqttc::v5::{AsyncClient, Event};
use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Reads per batch in the kill test's camera process (`outbox.batch_max_reads`).
const BATCH: usize = 200;

const RULE_FILTER: &str = "$aws/rules/anpr_plate_reads/+/plates";

/// The cloud side: a persistent `cloud-backend` session subscribed to the rule's topics, each
/// message handed to plate-ingest and acknowledged only once handled.
struct Cloud {
    reports: Arc<Mutex<Vec<IngestReport>>>,
    subscribed: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Cloud {
    fn start(broker: &Broker, store: DynamoPlateReadStore, cameras: DynamoCameraRegistry) -> Self {
        let id = broker.identity(CLOUD_IDENTITY);
        let mut opts = broker.v5_options(&id);
        opts.set_clean_start(false);
        opts.set_manual_acks(true);
        // (Not `set_connect_properties`: it would drop the packet size limit of the options.)
        opts.set_session_expiry_interval(Some(3600));
        let reports = Arc::new(Mutex::new(Vec::new()));
        let out = reports.clone();
        let subscribed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = subscribed.clone();
        let task = tokio::spawn(async move {
            let (client, mut ev) = AsyncClient::new(opts, 64);
            let policy = IngestPolicy::default();
            loop {
                match ev.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = client.subscribe(RULE_FILTER, QoS::AtLeastOnce).await;
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        flag.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let topic = String::from_utf8_lossy(&p.topic).into_owned();
                        let event = rule_event(&topic, &p.payload);
                        match plate_ingest::handle(
                            &store,
                            &cameras,
                            &policy,
                            &event,
                            anpr_protocol::clock::now_ms(),
                        )
                        .await
                        {
                            Ok(report) => {
                                out.lock().unwrap().push(report);
                                let _ = client.ack(&p).await;
                            }
                            Err(e) => eprintln!("cloud: not stored, not acked: {e:?}"),
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        });
        Self {
            reports,
            subscribed,
            task,
        }
    }

    /// Waits until the rule's subscription is in place (as an IoT rule is, before any camera
    /// publishes), so no test message can race it.
    async fn wait_subscribed(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.subscribed.load(std::sync::atomic::Ordering::SeqCst) {
            assert!(Instant::now() < deadline, "the cloud never subscribed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Messages stored and acknowledged so far; fails if the rule stand-in stopped (a panic
    /// in it would otherwise be lost when the task is aborted).
    fn handled(&self) -> usize {
        assert!(!self.task.is_finished(), "the rule stand-in stopped");
        self.reports.lock().unwrap().len()
    }

    /// Reads the stand-in reported stored so far (a re-delivered batch counts again).
    fn stored(&self) -> usize {
        assert!(!self.task.is_finished(), "the rule stand-in stopped");
        self.reports.lock().unwrap().iter().map(|r| r.stored).sum()
    }

    /// The read ids stored for `camera` once at least `n` are there (or after 300 s, for the
    /// caller's assertion to show what is missing). The store is queried only when the
    /// stand-in's own count says `n` may be there: the query covers 16 shards per page, and
    /// polling it would slow moto's writes down more than the wait it measures.
    async fn wait_for_count(
        &self,
        store: &DynamoPlateReadStore,
        camera: &CameraId,
        n: usize,
    ) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(300);
        let mut queried_at = None;
        loop {
            let handled = self.handled();
            if self.stored() >= n && queried_at != Some(handled) {
                queried_at = Some(handled);
                let ids = stored_ids(store, camera).await;
                if ids.len() >= n {
                    return ids;
                }
            }
            if Instant::now() > deadline {
                return stored_ids(store, camera).await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Cloud {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The agent's configuration for camera `cn` against the broker on `port`, with its state
/// (and outbox) under `dir`; from files, so a child process can build it too. Nothing is
/// uploaded here: S3 and the credentials provider point at a closed port.
fn agent_config(
    cn: &str,
    port: u16,
    ca: &Path,
    cert: &Path,
    key: &Path,
    dir: &Path,
) -> anpr_camera::Config {
    let media = dir.join("media");
    std::fs::create_dir_all(&media).unwrap();
    let local = anpr_test_support::agent_config::AgentConfig {
        camera: cn,
        media: &media,
        state: dir,
        mqtt_port: port,
        ca,
        cert,
        key,
        bucket: "unused",
        s3_endpoint: "http://127.0.0.1:9",
        creds_port: 9,
    };
    let mut cfg = local
        .builder()
        .mqtt(anpr_camera::config::MqttSection {
            reconnect_initial_ms: 200,
            reconnect_max_secs: 2,
            ..local.mqtt()
        })
        .build()
        .unwrap();
    cfg.outbox.batch_max_reads = 500;
    cfg.outbox.batch_max_age_secs = 1;
    cfg
}

/// Runs the agent (its own publisher: QoS 1, one batch in flight, ack on PUBACK, re-sent after
/// a new session) until its outbox is empty, then stops it. With `kill_at_depth`, the process
/// instead sends itself SIGKILL as soon as the outbox holds no more than that many reads.
async fn publish_with_the_agent(
    cfg: anpr_camera::Config,
    outbox: OutboxHandle,
    kill_at_depth: Option<usize>,
) {
    let (stop, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(
        anpr_camera::agent::Agent::builder(cfg)
            .outbox(outbox.clone())
            .run(anpr_camera::agent::Shutdown::new(rx)),
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let depth = outbox.lock().unwrap().depth();
        if depth == 0 {
            break;
        }
        if kill_at_depth.is_some_and(|k| depth as usize <= k) {
            // The real signal, from outside the process's own code paths: no destructor,
            // flush or graceful stop runs.
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &std::process::id().to_string()])
                .status();
            unreachable!("SIGKILL returned");
        }
        assert!(
            Instant::now() < deadline,
            "the agent did not drain its outbox"
        );
        assert!(!task.is_finished(), "the agent stopped: {:?}", task.await);
        // Polled often: the kill must land while most batches are still to be sent.
        let poll = if kill_at_depth.is_some() { 1 } else { 20 };
        tokio::time::sleep(Duration::from_millis(poll)).await;
    }
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(60), task)
        .await
        .expect("the agent stops")
        .unwrap()
        .unwrap();
}

fn read(i: u64, t: u64) -> PlateRead {
    PlateRead {
        id: ReadId::parse(&format!("k{i:06}")).unwrap(),
        t,
        p: format!("kl-{i:05}"),
        c: 93,
        img: Some(anpr_protocol::FileName::parse(&format!("reads/k{i:06}.jpg")).unwrap()),
        bb: None,
    }
}

/// Not a test: the camera process that `an_offline_camera_killed_mid_publish…` starts (and
/// kills): the agent on its outbox. It runs only when that test sets `ANPR_PLATES_CHILD_DIR`.
#[tokio::test]
#[ignore = "helper process of the kill -9 test"]
async fn camera_process_for_the_kill_test() {
    let Ok(dir) = std::env::var("ANPR_PLATES_CHILD_DIR") else {
        return;
    };
    let env = |k: &str| std::env::var(k).unwrap();
    anpr_test_support::init_crypto();
    let mut cfg = agent_config(
        &env("ANPR_PLATES_CHILD_CAMERA"),
        env("ANPR_PLATES_CHILD_PORT").parse().unwrap(),
        env("ANPR_PLATES_CHILD_CA").as_ref(),
        env("ANPR_PLATES_CHILD_CERT").as_ref(),
        env("ANPR_PLATES_CHILD_KEY").as_ref(),
        dir.as_ref(),
    );
    cfg.outbox.batch_max_reads = env("ANPR_PLATES_CHILD_BATCH").parse().unwrap();
    let kill_at_depth = std::env::var("ANPR_PLATES_CHILD_KILL_AT_DEPTH")
        .ok()
        .map(|v| v.parse().unwrap());
    let outbox = anpr_camera::agent::open_outbox(&cfg).unwrap();
    let n: u64 = env("ANPR_PLATES_CHILD_APPEND").parse().unwrap();
    {
        let mut ob = outbox.lock().unwrap();
        let base = anpr_protocol::clock::now_ms() - 3 * 3600 * 1000;
        for i in 0..n {
            // Three hours offline: one read every 3.6 s.
            ob.append(read(i, base + i * 3600)).unwrap();
        }
    }
    publish_with_the_agent(cfg, outbox, kill_at_depth).await;
}

fn spawn_camera(
    broker: &Broker,
    cn: &str,
    dir: &std::path::Path,
    append: u64,
    kill_at_depth: Option<usize>,
) -> std::process::Child {
    let id = broker.identity(cn);
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    if let Some(k) = kill_at_depth {
        cmd.env("ANPR_PLATES_CHILD_KILL_AT_DEPTH", k.to_string());
    }
    cmd.args([
        "--exact",
        "camera_process_for_the_kill_test",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("ANPR_PLATES_CHILD_DIR", dir)
    .env("ANPR_PLATES_CHILD_APPEND", append.to_string())
    .env("ANPR_PLATES_CHILD_BATCH", BATCH.to_string())
    .env("ANPR_PLATES_CHILD_CAMERA", cn)
    .env("ANPR_PLATES_CHILD_PORT", broker.port.to_string())
    .env("ANPR_PLATES_CHILD_CA", broker.pki.ca_path())
    .env("ANPR_PLATES_CHILD_CERT", &id.cert_path)
    .env("ANPR_PLATES_CHILD_KEY", &id.key_path)
    .stdout(std::process::Stdio::null())
    .spawn()
    .unwrap()
}

/// Waits up to 120 s for the camera process to end; past that, kills it and fails with `what`
/// and the broker's log.
async fn wait_for_exit(
    child: &mut std::process::Child,
    what: &str,
    broker: &Broker,
) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the camera {what} in 120 s; broker log:\n{}", broker.log());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_camera_killed_mid_publish_and_a_broker_restart_still_deliver_every_read_once() {
    const N: u64 = 3000;
    let mut broker = Broker::start();
    let (store, cameras) = fresh_store().await;
    let cloud = Cloud::start(&broker, store.clone(), cameras.clone());
    cloud.wait_subscribed().await;
    let camera = CameraId::parse("cam-kill").unwrap();
    let dir = tempfile::tempdir().unwrap();

    // The camera was offline: 3,000 reads queued (15 batches, one in flight at a time), then
    // its agent starts publishing, and its process is killed with SIGKILL once two batches
    // were acknowledged.
    let mut child = spawn_camera(
        &broker,
        camera.as_str(),
        dir.path(),
        N,
        Some(N as usize - 2 * BATCH),
    );
    let status = wait_for_exit(&mut child, "was not killed", &broker).await;
    use std::os::unix::process::ExitStatusExt as _;
    assert_eq!(
        status.signal(),
        Some(9),
        "the camera died of SIGKILL: {status}"
    );
    let left = Outbox::open(&dir.path().join("outbox"), OutboxConfig::default())
        .unwrap()
        .depth();
    assert!(
        left > 0 && left <= N - 2 * BATCH as u64,
        "the kill came after two batches and before the last ({left} reads left)"
    );

    // The camera comes back on the same outbox and sends what was not acknowledged (the agent
    // sends a batch a second). Once the cloud handles a batch again, the broker restarts under
    // the publishing camera.
    let mut child = spawn_camera(&broker, camera.as_str(), dir.path(), 0, None);
    let handled = cloud.handled();
    let deadline = Instant::now() + Duration::from_secs(60);
    while cloud.handled() == handled {
        assert!(
            Instant::now() < deadline,
            "the restarted agent published nothing"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before_restart = stored_ids(&store, &camera).await.len();
    assert!(
        child.try_wait().unwrap().is_none(),
        "the camera drained before the broker restart"
    );
    broker.restart();
    let status = wait_for_exit(&mut child, "did not drain its outbox", &broker).await;
    assert!(status.success(), "camera process failed: {status}");

    let ids = cloud.wait_for_count(&store, &camera, N as usize).await;
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "one item per read");
    let expected: HashSet<String> = (0..N).map(|i| format!("k{i:06}")).collect();
    let got: HashSet<String> = ids.into_iter().collect();
    assert_eq!(got, expected, "every read exactly once");
    assert!(
        before_restart < N as usize,
        "the broker restarted before the cloud had taken every read ({before_restart})"
    );
    let outbox = Outbox::open(&dir.path().join("outbox"), OutboxConfig::default()).unwrap();
    assert_eq!(outbox.depth(), 0);
    assert_eq!(outbox.dropped(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_outbox_drops_the_oldest_reads_counts_them_and_delivers_the_rest() {
    let broker = Broker::start();
    let (store, cameras) = fresh_store().await;
    let cloud = Cloud::start(&broker, store.clone(), cameras.clone());
    cloud.wait_subscribed().await;
    let camera = CameraId::parse("cam-full").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let id = broker.identity(camera.as_str());
    let cfg = agent_config(
        camera.as_str(),
        broker.port,
        &broker.pki.ca_path(),
        &id.cert_path,
        &id.key_path,
        dir.path(),
    );
    // A small outbox where the agent keeps it.
    let mut outbox = Outbox::open(
        &dir.path().join("outbox"),
        OutboxConfig {
            max_bytes: 32 * 1024,
            segment_bytes: 4 * 1024,
            sync: SyncPolicy::OnDemand,
            ..OutboxConfig::default()
        },
    )
    .unwrap();
    let n = 2000u64;
    let base = anpr_protocol::clock::now_ms() - 3_600_000;
    for i in 0..n {
        outbox.append(read(i, base + i)).unwrap();
    }
    let dropped = outbox.dropped();
    let kept = outbox.depth();
    assert!(dropped > 0, "32 KB cannot hold 2,000 reads");
    assert_eq!(
        kept + dropped,
        n,
        "every read is queued or counted as dropped"
    );

    let outbox: OutboxHandle = std::sync::Arc::new(std::sync::Mutex::new(outbox));
    publish_with_the_agent(cfg, outbox.clone(), None).await;
    assert_eq!(
        outbox.lock().unwrap().dropped(),
        dropped,
        "publishing drops nothing"
    );

    let ids: HashSet<String> = cloud
        .wait_for_count(&store, &camera, kept as usize)
        .await
        .into_iter()
        .collect();
    // Exactly the newest `kept` reads: drop-oldest.
    let expected: HashSet<String> = (dropped..n).map(|i| format!("k{i:06}")).collect();
    assert_eq!(ids, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_batches_and_another_cameras_id_are_refused_and_nothing_else_is_lost() {
    let broker = Broker::start();
    let (store, cameras) = fresh_store().await;
    let cloud = Cloud::start(&broker, store.clone(), cameras.clone());
    cloud.wait_subscribed().await;
    let cam = CameraId::parse("cam-a").unwrap();
    let victim = CameraId::parse("cam-b").unwrap();
    let acme = anpr_core::OrgId::parse("acme").unwrap();
    cameras
        .register(&anpr_core::Camera {
            camera_id: cam.clone(),
            name: None,
            registered_at: 1,
            org: Some(acme.clone()),
            presence: None,
        })
        .await
        .unwrap();
    let id = broker.identity(cam.as_str());
    broker.identity(victim.as_str());
    let (client, mut ev) = AsyncClient::new(broker.v5_options(&id), 16);
    let own = topics::plate_reads_basic_ingest(topics::PLATE_RULE, &cam);
    let foreign = topics::plate_reads_basic_ingest(topics::PLATE_RULE, &victim);
    let now = anpr_protocol::clock::now_ms();

    let mut publish = async |topic: &str, payload: Vec<u8>| -> PubAckReason {
        client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
        loop {
            match tokio::time::timeout(Duration::from_secs(10), ev.poll()).await {
                Ok(Ok(Event::Incoming(Packet::PubAck(a)))) => return a.reason,
                Ok(Ok(_)) => {}
                other => panic!("no PUBACK: {other:?}"),
            }
        }
    };
    // Another camera's topic: the broker (IoT policy) refuses it.
    let valid = format!(r#"{{"v":1,"r":[{{"id":"f1","t":{now},"p":"FOREIGN1","c":90}}]}}"#);
    assert_eq!(
        publish(&foreign, valid.into_bytes()).await,
        PubAckReason::NotAuthorized
    );
    // Malformed payloads: accepted by the broker, refused by ingestion, nothing stored.
    assert_eq!(
        publish(&own, b"not json at all".to_vec()).await,
        PubAckReason::Success
    );
    assert_eq!(
        publish(&own, br#"{"v":9,"r":[]}"#.to_vec()).await,
        PubAckReason::Success
    );
    // A batch claiming another camera's id, with future, ancient and broken reads among
    // valid ones: the valid ones are stored under the publishing camera.
    let mixed = format!(
        r#"{{"v":1,"camera_id":"cam-b","r":[
            {{"id":"ok1","t":{now},"p":"ab 123","c":90}},
            {{"id":"future","t":{},"p":"AB124","c":90}},
            {{"id":"ancient","t":{},"p":"AB125","c":90}},
            {{"id":"broken","t":"yesterday","p":"AB126","c":90}},
            {{"id":"ok2","t":{},"p":"CD-9","c":101}},
            {{"id":"ok3","t":{},"p":"cd-9","c":77}}]}}"#,
        now + 24 * 3_600_000,
        now - 400 * 24 * 3_600_000,
        now - 1,
        now - 2,
    );
    assert_eq!(
        publish(&own, mixed.into_bytes()).await,
        PubAckReason::Success
    );

    let deadline = Instant::now() + Duration::from_secs(30);
    while cloud.handled() < 3 {
        assert!(
            Instant::now() < deadline,
            "the cloud did not handle 3 messages"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let reports = cloud.reports.lock().unwrap().clone();
    assert_eq!(
        reports.len(),
        3,
        "the foreign publish never reached the rule"
    );
    assert!(reports[0].refused.is_some() && reports[1].refused.is_some());
    let mixed_report = &reports[2];
    assert_eq!(mixed_report.stored, 2);
    let reasons: Vec<_> = mixed_report
        .rejected
        .iter()
        .map(|r| (r.index, format!("{:?}", r.reason)))
        .collect();
    assert_eq!(
        reasons,
        [
            (1, "FutureTimestamp".to_owned()),
            (2, "Expired".to_owned()),
            (3, "Malformed".to_owned()),
            (4, "Malformed".to_owned()),
        ]
    );
    let mut ids = stored_ids(&store, &cam).await;
    ids.sort();
    assert_eq!(ids, ["ok1", "ok3"]);
    assert!(stored_ids(&store, &victim).await.is_empty());
    let sightings = store
        .reads_by_plate(&acme, "CD9", TimeRange::ALL, 10, None)
        .await
        .unwrap();
    assert_eq!(sightings.items.len(), 1);

    // An oversized message never gets past AWS IoT (128 KB); if one reached the rule it is
    // refused whole without touching storage.
    let big = vec![b' '; anpr_protocol::MAX_MQTT_PAYLOAD + 1];
    let report = plate_ingest::handle(
        &store,
        &cameras,
        &IngestPolicy::default(),
        &rule_event(&own, &big),
        now,
    )
    .await
    .unwrap();
    assert!(report.refused.unwrap().contains("exceeds"));
}
