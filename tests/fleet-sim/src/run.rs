//! The composition of a run: broker, identities, cameras, traffic, optional reconnect storm,
//! drain, summary.

use crate::camera::{self, CameraSpec, FleetCtx, Gate, S3Target};
use crate::cloud::Cloud;
use crate::profile::{Profile, compressed_ms};
use crate::stats::{self, Counters, ProcSample, percentile_ms};
use anpr_protocol::CameraId;
use anpr_test_support::agent_config::AgentConfig;
use anpr_test_support::broker::Broker;
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Simulated cameras.
    pub cameras: usize,
    /// Their profile.
    pub profile: Profile,
    /// Simulated seconds per wall-clock second.
    pub compress: f64,
    /// Traffic phase after every camera connected.
    pub duration: Duration,
    /// CONNECTs per second the limiter admits (0: unlimited).
    pub connect_rate: f64,
    /// Bytes of each uploaded file.
    pub file_bytes: usize,
    /// File requests per second for the whole fleet instead of the profile's rate (more
    /// latency samples in a short run; the reads keep the profile's rate).
    pub requests_per_sec: Option<f64>,
    /// Only the first this many cameras make plate reads (the others hold a session and take
    /// file requests): one open file less per camera without reads.
    pub reading_cameras: Option<usize>,
    /// Kill the broker after the traffic phase and restart it after this long.
    pub storm_down: Option<Duration>,
    /// File requests the cloud creates (to random cameras) while the broker is down, besides
    /// the profile's.
    pub storm_requests: usize,
    /// Seconds between progress lines (stderr).
    pub progress: Duration,
    /// Give up waiting for sessions or the drain after this long.
    pub timeout: Duration,
}

/// The reconnect storm's figures.
#[derive(Debug, Clone, Serialize)]
pub struct StormSummary {
    /// Broker down for (s).
    pub down_secs: f64,
    /// Broker restart → every camera connected again (s).
    pub all_back_secs: Option<f64>,
    /// Connect attempts the limiter refused during the recovery.
    pub refused: u64,
    /// Sessions connected at the end of the recovery.
    pub sessions_back: u64,
    /// File requests created while the broker was down.
    pub requests_during_outage: u64,
    /// Of those, `accepted` by their camera.
    pub outage_requests_accepted: u64,
    /// Of those, ready (object in S3).
    pub outage_requests_ready: u64,
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Cameras simulated.
    pub cameras: usize,
    /// Profile.
    pub profile: Profile,
    /// Time compression.
    pub compress: f64,
    /// Connect-rate limit (0: none).
    pub connect_rate: f64,
    /// Most sessions connected at once.
    pub sessions_held: u64,
    /// Start → every camera connected (s).
    pub connect_all_secs: Option<f64>,
    /// Start → every camera's file-request subscription granted (s).
    pub subscribe_all_secs: Option<f64>,
    /// Broker RSS before the cameras connected (KiB).
    pub broker_rss_empty_kib: u64,
    /// Broker RSS with every session connected (KiB).
    pub broker_rss_full_kib: u64,
    /// (full − empty) / sessions (KiB).
    pub broker_kib_per_session: Option<f64>,
    /// Simulator RSS at the end of the traffic phase (KiB).
    pub sim_rss_kib: u64,
    /// File requests published, `accepted`, ready, failed.
    pub requests: [u64; 4],
    /// Distinct file requests the cameras received.
    pub requests_received: u64,
    /// File requests received again after a reconnect (QoS 1), acknowledged only.
    pub requests_redelivered: u64,
    /// Request → `accepted`, p50 and p99 (ms).
    pub accepted_ms: [Option<f64>; 2],
    /// Request → ready (object in S3), p50 and p99 (ms).
    pub ready_ms: [Option<f64>; 2],
    /// Plate reads appended to the outboxes.
    pub reads_generated: u64,
    /// Distinct reads in the store.
    pub reads_stored: u64,
    /// Reads written (redeliveries included): written − stored = duplicates absorbed by the key.
    pub reads_written: u64,
    /// Reads generated and never stored.
    pub reads_lost: u64,
    /// Plate batches published.
    pub batches: u64,
    /// Distinct reads stored per second during the traffic phase.
    pub reads_per_sec: f64,
    /// CPU seconds (simulator + broker) per 1,000 reads stored in the traffic phase.
    pub cpu_secs_per_1000_reads: Option<f64>,
    /// Simulator and broker CPU seconds in the traffic phase.
    pub cpu_secs_sim_broker: [f64; 2],
    /// The storm, if one was run.
    pub storm: Option<StormSummary>,
}

/// The run could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Too few file descriptors for the sessions.
    #[error(
        "open files limit {have} is below the {need} this run needs (one socket per session, \
         one outbox segment per camera with reads; the broker needs one per session too): \
         raise it, e.g. `ulimit -n {need}` (as root: `ulimit -Hn`) before starting"
    )]
    Fds {
        /// Current soft limit.
        have: u64,
        /// Needed.
        need: u64,
    },
    /// File requests need S3 (moto).
    #[error("file requests need moto's S3: set ANPR_MOTO_URL (scripts/moto_server.py)")]
    NoS3,
    /// A camera configuration did not validate.
    #[error("camera configuration: {0}")]
    Config(String),
    /// A folder could not be made.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

fn sample(pid: Option<&str>) -> ProcSample {
    pid.and_then(stats::proc_sample).unwrap_or_default()
}

fn progress(c: &Counters, n: usize, start: Instant, store: usize) {
    eprintln!(
        "[{:>7.1}s] sessions {}/{n} subscribed {} refused {} | reads {} stored {} | requests {} received {} accepted {} ready {} failed {}",
        start.elapsed().as_secs_f64(),
        c.connected_now(),
        Counters::get(&c.subscribed),
        Counters::get(&c.refused),
        Counters::get(&c.reads_generated),
        store,
        Counters::get(&c.requests_sent),
        Counters::get(&c.requests_received),
        Counters::get(&c.accepted),
        Counters::get(&c.ready),
        Counters::get(&c.failed),
    );
}

/// Waits until `done()` or `timeout`, printing progress; returns the time waited if done.
async fn wait_for(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut tick: impl FnMut(),
    mut done: impl FnMut() -> bool,
) -> Option<Duration> {
    let t0 = Instant::now();
    let mut last = Instant::now();
    loop {
        if done() {
            return Some(t0.elapsed());
        }
        if t0.elapsed() > timeout {
            eprintln!("{what}: not done after {timeout:?}");
            return None;
        }
        if last.elapsed() >= every {
            tick();
            last = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn camera_options(
    broker: &Broker,
    dir: &Path,
    cn: &str,
) -> Result<rumqttc::v5::MqttOptions, RunError> {
    let id = broker.identity(cn);
    let state = dir.join("state").join(cn);
    let cfg = AgentConfig {
        camera: cn,
        media: &dir.join("media"),
        state: &state,
        mqtt_port: broker.port,
        ca: &broker.pki.ca_path(),
        cert: &id.cert_path,
        key: &id.key_path,
        bucket: "unused",
        s3_endpoint: "http://127.0.0.1:9",
        creds_port: 9,
    }
    .builder()
    .build()
    .map_err(|e| RunError::Config(e.to_string()))?;
    anpr_camera::mqtt::options(&cfg).map_err(|e| RunError::Config(e.to_string()))
}

async fn s3_target() -> Result<S3Target, RunError> {
    if std::env::var_os("ANPR_MOTO_URL").is_none() {
        return Err(RunError::NoS3);
    }
    let client = anpr_test_support::moto::clients().s3;
    let bucket = anpr_test_support::unique("fleet-sim");
    client
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .map_err(|e| RunError::Io(std::io::Error::other(e.to_string())))?;
    Ok(S3Target { client, bucket })
}

/// Runs the fleet and returns what it measured.
pub async fn run(o: &Options) -> Result<Summary, RunError> {
    let reads = o.profile.reads_per_day() > 0.0;
    let reading = if reads {
        o.reading_cameras.unwrap_or(o.cameras).min(o.cameras)
    } else {
        0
    };
    let need = o.cameras as u64 + 2 * reading as u64 + 256;
    if let Some(have) = stats::open_files_limit().filter(|&h| h < need) {
        return Err(RunError::Fds { have, need });
    }
    let req_rate = o
        .requests_per_sec
        .unwrap_or_else(|| o.profile.fleet_requests_per_sec(o.cameras, o.compress));
    let s3 = if req_rate > 0.0 {
        Some(s3_target().await?)
    } else {
        None
    };
    let dir = tempfile::Builder::new()
        .prefix("anpr-fleet-sim-")
        .tempdir()?;
    std::fs::create_dir_all(dir.path().join("media"))?;
    // no per-client queue limit: the cloud's rule session must not lose a backlog of batches
    let mut broker = Broker::start_with_max_queued(0);
    let broker_pid = stats::child_pid("mosquitto");
    let empty = sample(broker_pid.as_deref());
    let counters = Arc::new(Counters::default());
    let cloud = Arc::new(Cloud::start(&broker, counters.clone(), s3.clone()));
    wait_for(
        "cloud subscribe",
        o.timeout,
        o.progress,
        || {},
        || cloud.subscribed(),
    )
    .await;

    eprintln!("issuing {} certificates…", o.cameras);
    let mut specs = Vec::with_capacity(o.cameras);
    let mut ids = Vec::with_capacity(o.cameras);
    for i in 0..o.cameras {
        let cn = format!("sim-{i:06}");
        let options = camera_options(&broker, dir.path(), &cn)?;
        let id = CameraId::parse(&cn).map_err(|e| RunError::Config(e.to_string()))?;
        ids.push(id.clone());
        specs.push(CameraSpec {
            id,
            options,
            outbox_dir: (i < reading).then(|| dir.path().join("outbox").join(&cn)),
            reads_per_sec: o.profile.reads_per_sec(o.compress),
        });
    }
    let (quiet_tx, quiet_rx) = watch::channel(false);
    let (stop_tx, stop_rx) = watch::channel(false);
    let ctx = FleetCtx {
        counters: counters.clone(),
        gate: Arc::new(Gate::new(o.connect_rate)),
        s3,
        file_bytes: o.file_bytes,
        batch_age_ms: compressed_ms(30_000, o.compress),
        quiet: quiet_rx,
        stop: stop_rx,
    };
    let start = Instant::now();
    let tasks: Vec<_> = specs
        .into_iter()
        .map(|s| tokio::spawn(camera::run(s, ctx.clone())))
        .collect();
    let n = o.cameras;
    let c = counters.clone();
    let tick = || progress(&c, n, start, cloud.store.len());
    let connect_all = wait_for("connect", o.timeout, o.progress, tick, || {
        c.connected_now() >= n as u64
    })
    .await;
    let mut held = c.connected_now();
    // a request published before its camera's subscription exists would be dropped by the
    // broker (no session queues it): requests start once every camera is subscribed
    let subscribe_all = wait_for("subscribe", o.timeout, o.progress, tick, || {
        Counters::get(&c.subscribed) >= n as u64
    })
    .await
    .map(|_| start.elapsed());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let full = sample(broker_pid.as_deref());

    // traffic phase: reads from the cameras, requests from the cloud
    let (gen_stop_tx, mut gen_stop) = watch::channel(false);
    let generator = {
        let (cloud, c, ids) = (cloud.clone(), c.clone(), ids.clone());
        tokio::spawn(async move {
            if req_rate <= 0.0 {
                return;
            }
            loop {
                let gap = -(1.0 - rand::random::<f64>()).ln() / req_rate;
                tokio::select! {
                    _ = gen_stop.changed() => return,
                    _ = tokio::time::sleep(Duration::from_secs_f64(gap)) => {
                        let cam = &ids[rand::random_range(0..ids.len())];
                        cloud.request(cam, &c).await;
                    }
                }
            }
        })
    };
    let (sim0, br0, stored0, t0) = (
        sample(Some("self")),
        sample(broker_pid.as_deref()),
        cloud.store.len(),
        Instant::now(),
    );
    let traffic_end = t0 + o.duration;
    while Instant::now() < traffic_end {
        tokio::time::sleep(o.progress.min(traffic_end - Instant::now())).await;
        held = held.max(c.connected_now());
        tick();
    }
    let (sim1, br1, stored1, secs) = (
        sample(Some("self")),
        sample(broker_pid.as_deref()),
        cloud.store.len(),
        t0.elapsed().as_secs_f64(),
    );

    let storm = match o.storm_down {
        None => None,
        Some(down) => {
            eprintln!("storm: stopping the broker for {down:?}");
            cloud.set_outage(true);
            tokio::task::block_in_place(|| broker.stop());
            let t_down = Instant::now();
            for _ in 0..o.storm_requests {
                cloud
                    .request(&ids[rand::random_range(0..ids.len())], &c)
                    .await;
            }
            tokio::time::sleep(down.saturating_sub(t_down.elapsed())).await;
            let refused0 = Counters::get(&c.refused);
            tokio::task::block_in_place(|| broker.restart());
            cloud.set_outage(false);
            eprintln!("storm: broker restarted");
            let back = wait_for("reconnect", o.timeout, o.progress, tick, || {
                c.connected_now() >= n as u64
            })
            .await;
            Some(StormSummary {
                down_secs: down.as_secs_f64(),
                all_back_secs: back.map(|d| d.as_secs_f64()),
                refused: Counters::get(&c.refused) - refused0,
                sessions_back: c.connected_now(),
                requests_during_outage: 0,
                outage_requests_accepted: 0,
                outage_requests_ready: 0,
            })
        }
    };

    // drain: no new reads or requests; wait for every read and request to land
    let _ = gen_stop_tx.send(true);
    let _ = generator.await;
    let _ = quiet_tx.send(true);
    let sim_rss = sample(Some("self")).rss_kib;
    wait_for("drain", o.timeout, o.progress, tick, || {
        let gen_reads = Counters::get(&c.reads_generated) as usize;
        cloud.store.len() >= gen_reads
            && Counters::get(&c.ready) + Counters::get(&c.failed) >= Counters::get(&c.requests_sent)
    })
    .await;
    tick();
    let storm = storm.map(|mut st| {
        [
            st.requests_during_outage,
            st.outage_requests_accepted,
            st.outage_requests_ready,
        ] = cloud.outage_requests();
        st
    });
    let (accepted, ready) = cloud.latencies();
    let stored = cloud.store.len() as u64;
    let generated = Counters::get(&c.reads_generated);
    let steady_reads = stored1.saturating_sub(stored0) as f64;
    let cpu = [sim1.cpu_secs - sim0.cpu_secs, br1.cpu_secs - br0.cpu_secs];
    let summary = Summary {
        cameras: n,
        profile: o.profile,
        compress: o.compress,
        connect_rate: o.connect_rate,
        sessions_held: held,
        connect_all_secs: connect_all.map(|d| d.as_secs_f64()),
        subscribe_all_secs: subscribe_all.map(|d| d.as_secs_f64()),
        broker_rss_empty_kib: empty.rss_kib,
        broker_rss_full_kib: full.rss_kib,
        broker_kib_per_session: (held > 0 && full.rss_kib > 0)
            .then(|| (full.rss_kib.saturating_sub(empty.rss_kib)) as f64 / held as f64),
        sim_rss_kib: sim_rss,
        requests: [
            Counters::get(&c.requests_sent),
            Counters::get(&c.accepted),
            Counters::get(&c.ready),
            Counters::get(&c.failed),
        ],
        requests_received: Counters::get(&c.requests_received),
        requests_redelivered: Counters::get(&c.requests_redelivered),
        accepted_ms: [
            percentile_ms(&accepted, 50.0),
            percentile_ms(&accepted, 99.0),
        ],
        ready_ms: [percentile_ms(&ready, 50.0), percentile_ms(&ready, 99.0)],
        reads_generated: generated,
        reads_stored: stored,
        reads_written: Counters::get(&c.reads_written),
        reads_lost: generated.saturating_sub(stored),
        batches: Counters::get(&c.batches_sent),
        reads_per_sec: steady_reads / secs.max(1e-9),
        cpu_secs_per_1000_reads: (steady_reads > 0.0)
            .then(|| (cpu[0] + cpu[1]) / steady_reads * 1000.0),
        cpu_secs_sim_broker: cpu,
        storm,
    };
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    drop(broker);
    Ok(summary)
}

/// The summary as a table.
pub fn table(s: &Summary) -> String {
    let f = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:.1}"));
    let mut rows = vec![
        (
            "cameras / profile / compression".to_owned(),
            format!("{} / {:?} / {}×", s.cameras, s.profile, s.compress),
        ),
        (
            "connect-rate limit (CONNECT/s)".into(),
            if s.connect_rate > 0.0 {
                format!("{}", s.connect_rate)
            } else {
                "none".into()
            },
        ),
        ("sessions held".into(), s.sessions_held.to_string()),
        ("start → all connected (s)".into(), f(s.connect_all_secs)),
        ("start → all subscribed (s)".into(), f(s.subscribe_all_secs)),
        (
            "broker RSS empty → full (KiB)".into(),
            format!("{} → {}", s.broker_rss_empty_kib, s.broker_rss_full_kib),
        ),
        ("broker KiB per session".into(), f(s.broker_kib_per_session)),
        ("simulator RSS (KiB)".into(), s.sim_rss_kib.to_string()),
        (
            "requests sent / received / accepted / ready / failed".into(),
            format!(
                "{} / {} / {} / {} / {}",
                s.requests[0], s.requests_received, s.requests[1], s.requests[2], s.requests[3]
            ),
        ),
        (
            "requests redelivered (QoS 1, acknowledged only)".into(),
            s.requests_redelivered.to_string(),
        ),
        (
            "request → accepted p50 / p99 (ms)".into(),
            format!("{} / {}", f(s.accepted_ms[0]), f(s.accepted_ms[1])),
        ),
        (
            "request → ready p50 / p99 (ms)".into(),
            format!("{} / {}", f(s.ready_ms[0]), f(s.ready_ms[1])),
        ),
        (
            "reads generated / stored / written / lost".into(),
            format!(
                "{} / {} / {} / {}",
                s.reads_generated, s.reads_stored, s.reads_written, s.reads_lost
            ),
        ),
        ("plate batches".into(), s.batches.to_string()),
        (
            "reads/s end to end (traffic phase)".into(),
            format!("{:.0}", s.reads_per_sec),
        ),
        (
            "CPU s per 1,000 reads (sim + broker)".into(),
            s.cpu_secs_per_1000_reads
                .map_or("–".into(), |v| format!("{v:.3}")),
        ),
        (
            "CPU s sim / broker (traffic phase)".into(),
            format!(
                "{:.2} / {:.2}",
                s.cpu_secs_sim_broker[0], s.cpu_secs_sim_broker[1]
            ),
        ),
    ];
    if let Some(st) = &s.storm {
        rows.push((
            "storm: broker down (s)".into(),
            format!("{:.1}", st.down_secs),
        ));
        rows.push(("storm: restart → all back (s)".into(), f(st.all_back_secs)));
        rows.push(("storm: connects refused".into(), st.refused.to_string()));
        rows.push(("storm: sessions back".into(), st.sessions_back.to_string()));
        rows.push((
            "storm: requests created during outage / accepted / ready".into(),
            format!(
                "{} / {} / {}",
                st.requests_during_outage, st.outage_requests_accepted, st.outage_requests_ready
            ),
        ));
    }
    let w = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0);
    rows.iter()
        .map(|(k, v)| format!("{k:<w$}  {v}"))
        .collect::<Vec<_>>()
        .join("\n")
}
