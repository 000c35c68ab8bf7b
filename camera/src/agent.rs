//! The thin I/O loop: drives the MQTT session (reconnects by the fleet-safe rules of
//! `machine::Reconnect`; subscribe only when the broker has no session; the outbox backlog
//! drains paced, from a random start), hands messages to the dispatcher, carries out the
//! effects, runs uploads one at a time in a worker task, sends the health report on
//! connect and on its interval, and shuts down gracefully (the upload stops at a part
//! boundary with its checkpoint saved).

use crate::config::Config;
use crate::creds::{CachedCredentials, CredsError, IotCredentials};
use crate::dispatch::{self, Dispatcher, Effect, Outcome};
use crate::journal::{Entry, Journal, JournalError, Phase};
use crate::machine;
use crate::media;
use crate::mqtt::{self, MqttSetupError};
use crate::outbox::{Outbox, OutboxConfig, OutboxError};
use crate::pubacks::{Tag, Tracker};
use crate::remote::{self, RemoteState, RemoteStore, Step};
use crate::s3::{S3, S3SetupError, Verdict};
use crate::upload::{Progress, UploadError, Uploader};
use anpr_protocol::shadow::{self as shadow_msg, ReportedUpdate};
use anpr_protocol::{FileStatus, FileStatusKind, Health, ReasonCode, clock, topics};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Packet, SubscribeReasonCode};
use rumqttc::v5::{AsyncClient, Event};
use serde_json::{Map, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// The agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// MQTT options (TLS material) could not be built.
    #[error(transparent)]
    Mqtt(#[from] MqttSetupError),
    /// The credentials provider client could not be built.
    #[error(transparent)]
    Creds(#[from] CredsError),
    /// The S3 client could not be built.
    #[error(transparent)]
    S3(#[from] S3SetupError),
    /// The journal could not be opened.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The plate-read outbox could not be opened.
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    /// The media directory is unusable.
    #[error("media directory {path}: {source}")]
    Media {
        /// The directory.
        path: std::path::PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// The plate-read outbox, shared between the producer (the recognition pipeline appends) and
/// the agent (publishes batches, acknowledges them on PUBACK).
pub type OutboxHandle = Arc<Mutex<Outbox>>;

/// Opens the outbox at `{state_dir}/outbox` with the configured batching.
pub fn open_outbox(cfg: &Config) -> Result<OutboxHandle, AgentError> {
    let oc = OutboxConfig {
        batch_max_reads: cfg.outbox.batch_max_reads as usize,
        batch_max_age_ms: u64::from(cfg.outbox.batch_max_age_secs) * 1000,
        ..OutboxConfig::default()
    };
    let ob = Outbox::open(&cfg.state_dir.join("outbox"), oc)?;
    Ok(Arc::new(Mutex::new(ob)))
}

/// State shared by the loop and the upload worker.
#[derive(Debug, Default)]
struct Shared {
    last_error: Mutex<Option<String>>,
}

impl Shared {
    fn error(&self, e: impl Into<String>) {
        if let Ok(mut g) = self.last_error.lock() {
            *g = Some(e.into().chars().take(120).collect());
        }
    }
    fn take_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|mut g| g.take())
    }
}

/// Everything the agent needs, built once from the configuration.
#[derive(Debug)]
struct Ctx {
    cfg: Config,
    journal: Journal,
    uploader: Uploader,
    client: AsyncClient,
    shared: Arc<Shared>,
    started: Instant,
}

/// Runs the agent until `shutdown` turns true, with its own outbox (see [`run_with_outbox`]).
pub async fn run(cfg: Config, shutdown: watch::Receiver<bool>) -> Result<(), AgentError> {
    let outbox = open_outbox(&cfg)?;
    run_with_outbox(cfg, outbox, shutdown).await
}

/// Runs the agent until `shutdown` turns true, publishing the batches of `outbox` (which a
/// recognition pipeline appends to). Returns an error only if it cannot start.
pub async fn run_with_outbox(
    cfg: Config,
    outbox: OutboxHandle,
    shutdown: watch::Receiver<bool>,
) -> Result<(), AgentError> {
    let (running, _) = watch::channel(cfg.clone());
    run_with_settings(cfg, outbox, shutdown, running).await
}

/// [`run_with_outbox`], telling `running` the configuration in force (the file with the
/// remote settings over it) at start and after every remote change, for the parts the agent
/// does not run itself (the frame feed).
pub async fn run_with_settings(
    cfg: Config,
    outbox: OutboxHandle,
    mut shutdown: watch::Receiver<bool>,
    running: watch::Sender<Config>,
) -> Result<(), AgentError> {
    let cam = cfg.camera();
    std::fs::create_dir_all(&cfg.state_dir).map_err(|source| AgentError::Media {
        path: cfg.state_dir.clone(),
        source,
    })?;
    let mut rc = RemoteCtl::open(cfg.clone(), running);
    let cfg = rc.running.clone();
    std::fs::read_dir(&cfg.media_dir).map_err(|source| AgentError::Media {
        path: cfg.media_dir.clone(),
        source,
    })?;
    let journal = Journal::open(&cfg.state_dir)?;
    let pruned = journal.prune(clock::now_secs(), 8 * 24 * 3600);
    let opts = mqtt::options(&cfg)?;
    let c = &cfg.credentials;
    let ca = mqtt::read(c.ca_file.as_ref().unwrap_or(&cfg.mqtt.ca_file))?;
    let creds = IotCredentials::new(
        &c.host,
        c.port,
        &c.role_alias,
        cam.as_str(),
        &ca,
        &mqtt::read(&cfg.mqtt.cert_file)?,
        &mqtt::read(&cfg.mqtt.key_file)?,
    )?;
    let s3 = S3::new(&cfg.upload, CachedCredentials::new(creds))?;
    let uploader = Uploader::new(s3, cfg.upload.clone());
    if let Ok(mut ob) = outbox.lock() {
        ob.set_batching(
            cfg.outbox.batch_max_reads as usize,
            u64::from(cfg.outbox.batch_max_age_secs) * 1000,
        );
    }
    let (client, mut ev) = AsyncClient::new(opts, 64);
    let shared = Arc::new(Shared::default());
    let ctx = Arc::new(Ctx {
        cfg,
        journal: journal.clone(),
        uploader,
        client: client.clone(),
        shared: shared.clone(),
        started: Instant::now(),
    });
    tracing::info!(camera = %cam, pruned, "agent starting");

    // Work left over from before a restart: resume it first.
    let (jobs_tx, jobs_rx) = mpsc::unbounded_channel::<Entry>();
    let (leftover, corrupt) = journal.unfinished()?;
    for e in corrupt {
        tracing::error!(error = %e, "skipping corrupt journal entry");
        shared.error(e.to_string());
    }
    for mut entry in leftover {
        match machine::recover(&entry.phase, &entry.req, clock::now_secs()) {
            Some(status) => {
                entry.phase = Phase::Done {
                    status,
                    answered: false,
                };
                if let Err(e) = journal.put(&entry) {
                    shared.error(e.to_string());
                }
            }
            None => {
                tracing::info!(id = %entry.req.id, "resuming request from the journal");
                let _ = jobs_tx.send(entry);
            }
        }
    }
    // Statuses go out through the loop, once connected, in the order they were decided.
    let (status_tx, mut status_rx) = mpsc::unbounded_channel::<FileStatus>();
    // Final statuses whose PUBACK did not arrive before the last stop (a kill between the
    // journal write and the acknowledgement) go first; the PUBACK marks them answered.
    match journal.unanswered() {
        Ok(statuses) => {
            for s in statuses {
                tracing::info!(id = %s.id, "final status not acknowledged before the restart: publishing it again");
                let _ = status_tx.send(s);
            }
        }
        Err(e) => shared.error(e.to_string()),
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let worker = tokio::spawn(worker(ctx.clone(), jobs_rx, stop_rx, status_tx));
    let mut tracker = Tracker::default();
    let plate_topic = ctx.cfg.plate_topic();
    let mut batch_in_flight: Option<u64> = None;
    let mut batch_hold_until = tokio::time::Instant::now();
    let mut connected = false;
    let mut outbox_tick = tokio::time::interval(Duration::from_secs(1));
    outbox_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    let mut dispatcher = Dispatcher::new(cam.clone());
    dispatcher.register(
        topics::FILE_REQUEST,
        dispatch::file_request_handler(journal),
    );
    if ctx.cfg.remote.enabled {
        for suffix in [
            shadow_msg::UPDATE_DELTA,
            shadow_msg::GET_ACCEPTED,
            shadow_msg::GET_REJECTED,
            shadow_msg::UPDATE_REJECTED,
        ] {
            dispatcher.register_topic(
                topics::config_shadow(&cam, suffix),
                dispatch::shadow_handler(suffix),
            );
        }
    }
    let subs_file = ctx.cfg.state_dir.join("subscriptions");
    let mut subs_granted: Option<String> = None;
    let mut get_after_suback = false;
    let mut sync_after_suback = false;
    let mut reconnect_to: Option<Config> = None;
    let far = || tokio::time::Instant::now() + Duration::from_secs(365 * 24 * 3600);

    let mut health_every = Duration::from_secs(ctx.cfg.health.interval_secs);
    let mut health_tick =
        tokio::time::interval_at(tokio::time::Instant::now() + health_every, health_every);
    health_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The reconnect rules (`machine::Reconnect`) on the loop's clock, in milliseconds.
    let t0 = tokio::time::Instant::now();
    let clock = move || u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX);
    let mut link = machine::Reconnect::new(ctx.cfg.reconnect_policy());
    let drain_start_max_ms = u64::from(ctx.cfg.outbox.drain_start_max_secs) * 1000;
    let mut up = false;
    let mut told: Option<rumqttc::v5::mqttbytes::v5::DisconnectReasonCode> = None;
    // A fleet powered on together does not connect in lockstep.
    let boot = link.boot(clock(), rand::random::<f64>());
    let mut stopping = false;
    if boot > 0 {
        tracing::info!(
            delay_ms = boot,
            "first connection after a random boot delay"
        );
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(boot)) => {}
            _ = shutdown.changed() => stopping = *shutdown.borrow(),
        }
    }

    loop {
        // Asked to stop during the boot delay: straight to the shutdown.
        if stopping {
            break;
        }
        tokio::select! {
            _ = shutdown.changed() => {
                if *shutdown.borrow() { break; }
            }
            _ = health_tick.tick() => publish_health(&ctx, &outbox).await,
            // A connection change waits for the loop to send the acknowledgement of the
            // message that caused it; then the session reconnects with the new settings.
            _ = tokio::time::sleep(Duration::from_millis(200)), if reconnect_to.is_some() => {
                if let Some(c) = reconnect_to.take() {
                    match mqtt::options(&c) {
                        Ok(o) => {
                            tracing::info!(port = c.mqtt.port, keep_alive = c.mqtt.keep_alive_secs, "reconnecting with the new configuration");
                            ev.options = o;
                            ev.clean();
                            connected = false;
                            up = false;
                            let wait = link.redial(clock());
                            tokio::time::sleep(Duration::from_millis(wait)).await;
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "new MQTT settings unusable");
                            shared.error(e.to_string());
                        }
                    }
                }
            }
            _ = tokio::time::sleep_until(rc.deadline.unwrap_or_else(far)), if rc.deadline.is_some() && !connected => {
                if let Some(report) = rc.roll_back(&shared) {
                    match mqtt::options(&rc.running) {
                        Ok(o) => { ev.options = o; ev.clean(); }
                        Err(e) => shared.error(e.to_string()),
                    }
                    if publish_report(&client, &cam, report).await { tracker.expect(Tag::Other); }
                }
            }
            Some(s) = status_rx.recv(), if connected => {
                if publish_status(&client, &cam, &s).await {
                    tracker.expect(status_tag(&s));
                }
            }
            _ = outbox_tick.tick(), if connected && batch_in_flight.is_none()
                && tokio::time::Instant::now() >= batch_hold_until => {
                let batch = outbox.lock().ok().and_then(|mut ob| ob.next_batch(clock::now_ms()));
                if let Some(b) = batch {
                    match client.publish(plate_topic.as_str(), QoS::AtLeastOnce, false, b.payload).await {
                        Ok(()) => {
                            tracker.expect(Tag::Batch(b.seq));
                            batch_in_flight = Some(b.seq);
                            tracing::debug!(seq = b.seq, reads = b.count, "plate batch published");
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "plate batch not queued");
                            if let Ok(mut ob) = outbox.lock() { ob.reset_in_flight(); }
                        }
                    }
                }
            }
            ev = ev.poll() => match ev {
                Ok(Event::Outgoing(rumqttc::Outgoing::Publish(pkid))) => tracker.sent(pkid),
                Ok(Event::Incoming(Packet::PubAck(ack))) => {
                    use rumqttc::v5::mqttbytes::v5::PubAckReason as R;
                    let delivered = matches!(ack.reason, R::Success | R::NoMatchingSubscribers);
                    match tracker.acked(ack.pkid) {
                    Some(Tag::Final(id)) if delivered => {
                        if let Err(e) = ctx.journal.mark_answered(&id) {
                            tracing::error!(error = %e, "journal write failed");
                            shared.error(e.to_string());
                        }
                    }
                    Some(Tag::Final(id)) => {
                        // Published again at the next start, not in a loop.
                        tracing::error!(%id, reason = ?ack.reason, "final status refused by the broker");
                        shared.error(format!("status refused: {:?}", ack.reason));
                    }
                    Some(Tag::Batch(seq)) => {
                        batch_in_flight = None;
                        if delivered {
                            let r = outbox.lock().map(|mut ob| ob.ack(seq));
                            if let Ok(Err(e)) = r {
                                tracing::error!(error = %e, "outbox ack failed");
                                shared.error(e.to_string());
                            }
                        } else {
                            // Refused (e.g. not authorised): sent again later, not in a loop.
                            tracing::error!(reason = ?ack.reason, "plate batch refused by the broker");
                            shared.error(format!("plate batch refused: {:?}", ack.reason));
                            if let Ok(mut ob) = outbox.lock() { ob.reset_in_flight(); }
                            batch_hold_until = tokio::time::Instant::now() + Duration::from_secs(300);
                        }
                    }
                    Some(Tag::Other) | None => {}
                    }
                }
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    link.connected(clock());
                    up = true;
                    told = None;
                    connected = true;
                    // A backlog starts draining at a random point, not with the whole fleet.
                    let start = tokio::time::Instant::now()
                        + Duration::from_millis(machine::drain_start_ms(drain_start_max_ms, rand::random::<f64>()));
                    batch_hold_until = batch_hold_until.max(start);
                    tracing::info!(session_present = ack.session_present, "connected");
                    // Subscribe on a new session, and when this build subscribes to other
                    // topics than the one that made the session (an upgrade).
                    let want = dispatcher.topics().join("\n");
                    let had = std::fs::read_to_string(&subs_file).unwrap_or_default();
                    if !ack.session_present || had != want {
                        let subs = dispatcher.topics().into_iter().map(|t| {
                            rumqttc::v5::mqttbytes::v5::Filter::new(t, QoS::AtLeastOnce)
                        });
                        match client.subscribe_many(subs).await {
                            Ok(()) => {
                                // Recorded once the broker grants them (SUBACK): a kill before
                                // that subscribes again at the next start.
                                subs_granted = Some(want);
                                // A new session lost what was queued in the old one: once
                                // subscribed, ask the cloud for the requests still open.
                                sync_after_suback = !ack.session_present;
                                // A change made while the session was gone is in the shadow.
                                get_after_suback = ctx.cfg.remote.enabled;
                            }
                            Err(e) => tracing::error!(error = %e, "subscribe request failed"),
                        }
                    }
                    if let Some(report) = rc.confirm(&shared)
                        && publish_report(&client, &cam, report).await
                    {
                        tracker.expect(Tag::Other);
                    }
                    let _ = client
                        .publish(topics::presence(&cam), QoS::AtMostOnce, true, mqtt::presence_payload(true))
                        .await;
                    publish_health(&ctx, &outbox).await;
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let topic = String::from_utf8_lossy(&p.topic).into_owned();
                    match dispatcher.dispatch(&topic, &p.payload, clock::now_secs()) {
                        Outcome::Handled(effects) => {
                            for e in effects {
                                match e {
                                    Effect::Status(s) => if publish_status(&client, &cam, &s).await { tracker.expect(status_tag(&s)); },
                                    Effect::Upload(entry) => { let _ = jobs_tx.send(entry); }
                                    Effect::Error(msg) => shared.error(msg),
                                    Effect::Shadow { suffix, payload } => {
                                        let step = rc.on_message(suffix, &payload, &shared);
                                        let act = rc.carry_out(step, &shared);
                                        if let Some(c) = &act.hot {
                                            ctx.uploader.tune(c.upload.max_bytes_per_sec, c.upload.progress_step_pct);
                                            if let Ok(mut ob) = outbox.lock() {
                                                ob.set_batching(c.outbox.batch_max_reads as usize, u64::from(c.outbox.batch_max_age_secs) * 1000);
                                            }
                                            let every = Duration::from_secs(c.health.interval_secs);
                                            if every != health_every {
                                                health_every = every;
                                                health_tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
                                                health_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                                            }
                                        }
                                        if act.reconnect.is_some() { reconnect_to = act.reconnect; }
                                        if let Some(report) = act.report
                                            && publish_report(&client, &cam, report).await
                                        {
                                            tracker.expect(Tag::Other);
                                        }
                                    }
                                }
                            }
                        }
                        Outcome::Unknown { first } => {
                            if first {
                                tracing::warn!(%topic, "message on a topic with no handler (reported once)");
                                shared.error(format!("no handler for {topic}"));
                            }
                        }
                    }
                    // Acknowledged only now: the journal holds the request.
                    if let Err(e) = client.ack(&p).await {
                        tracing::warn!(error = %e, "ack failed");
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(s))) => {
                    let mut granted = true;
                    for code in &s.return_codes {
                        if !matches!(code, SubscribeReasonCode::Success(_)) {
                            tracing::error!(code = ?code, "subscription refused by the broker");
                            shared.error(format!("subscribe refused: {code:?}"));
                            granted = false;
                        }
                    }
                    if let Some(want) = subs_granted.take()
                        && granted
                        && let Err(e) = std::fs::write(&subs_file, want)
                    {
                        tracing::warn!(error = %e, "subscriptions not recorded; subscribing again at the next start");
                    }
                    if std::mem::take(&mut sync_after_suback) && publish_sync(&client, &cam).await {
                        tracker.expect(Tag::Other);
                    }
                    if std::mem::take(&mut get_after_suback) {
                        let _ = client
                            .publish(topics::config_shadow(&cam, shadow_msg::GET), QoS::AtMostOnce, false, Vec::new())
                            .await;
                    }
                }
                Ok(Event::Incoming(Packet::Disconnect(d))) => {
                    tracing::warn!(reason = ?d.reason_code, "broker disconnected us");
                    told = Some(d.reason_code);
                }
                Ok(_) => {}
                Err(e) => {
                    connected = false;
                    let why = mqtt::link_down(&e, std::mem::take(&mut up), told.take());
                    let delay = link.down(clock(), why, rand::random::<f64>());
                    tracing::warn!(error = %e, ?why, delay_ms = delay, "MQTT connection lost; reconnecting after back-off");
                    shared.error(format!("mqtt: {e}"));
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(delay)) => {}
                        // A connection trial's deadline cuts the back-off short.
                        _ = tokio::time::sleep_until(rc.deadline.unwrap_or_else(far)), if rc.deadline.is_some() => {}
                        _ = shutdown.changed() => if *shutdown.borrow() { break; },
                    }
                }
            }
        }
    }

    // Graceful shutdown: stop the worker at a part boundary, keep the session serviced while
    // it finishes so its last status goes out, then say goodbye.
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    drop(jobs_tx);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut worker = worker;
    loop {
        tokio::select! {
            _ = &mut worker => break,
            Some(s) = status_rx.recv() => { publish_status(&client, &cam, &s).await; }
            _ = tokio::time::sleep_until(deadline) => { tracing::warn!("worker did not stop in time"); break; }
            r = ev.poll() => if r.is_err() { tokio::time::sleep(Duration::from_millis(200)).await; },
        }
    }
    while let Ok(s) = status_rx.try_recv() {
        publish_status(&client, &cam, &s).await;
    }
    let _ = client
        .publish(
            topics::presence(&cam),
            QoS::AtLeastOnce,
            true,
            mqtt::presence_payload(false),
        )
        .await;
    if let Ok(mut ob) = outbox.lock() {
        let _ = ob.sync();
    }
    let _ = client.disconnect().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => break,
            r = ev.poll() => match r {
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// The shadow service's `timestamp` of a message (Unix seconds), or the camera's clock when
/// the message has none: the time connection changes are rate-limited by.
fn shadow_time(timestamp: u64) -> u64 {
    if timestamp > 0 {
        timestamp
    } else {
        clock::now_ms() / 1000
    }
}

/// What a status's PUBACK settles: a final status is marked answered in the journal.
fn status_tag(s: &FileStatus) -> Tag {
    if s.kind.is_final() {
        Tag::Final(s.id.clone())
    } else {
        Tag::Other
    }
}

/// Publishes a status with QoS 1; true if it was queued.
async fn publish_status(
    client: &AsyncClient,
    cam: &anpr_protocol::CameraId,
    s: &FileStatus,
) -> bool {
    match anpr_protocol::encode(s) {
        Ok(bytes) => match client
            .publish(topics::file_status(cam), QoS::AtLeastOnce, false, bytes)
            .await
        {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = %e, "status not queued");
                false
            }
        },
        Err(e) => {
            tracing::error!(error = %e, "status not encodable");
            false
        }
    }
}

/// Publishes the sync message (QoS 1) that asks the cloud for the open requests; true if
/// queued.
pub async fn publish_sync(client: &AsyncClient, cam: &anpr_protocol::CameraId) -> bool {
    let Ok(bytes) = anpr_protocol::encode(&anpr_protocol::FileSync {}) else {
        return false;
    };
    tracing::info!("new session: asking for the open requests");
    client
        .publish(topics::file_sync(cam), QoS::AtLeastOnce, false, bytes)
        .await
        .map_err(|e| tracing::error!(error = %e, "sync not queued"))
        .is_ok()
}

/// The health report: small (about 60 bytes), QoS 0.
async fn publish_health(ctx: &Ctx, outbox: &OutboxHandle) {
    let h = Health {
        up: ctx.started.elapsed().as_secs(),
        ver: env!("CARGO_PKG_VERSION").to_owned(),
        ob: outbox.lock().map(|ob| ob.depth()).unwrap_or(0),
        df: crate::health::disk_free_mib(&ctx.cfg.media_dir).unwrap_or(0),
        err: ctx.shared.take_error(),
    };
    if let Ok(bytes) = anpr_protocol::encode(&h) {
        let _ = ctx
            .client
            .publish(
                topics::health(&ctx.cfg.camera()),
                QoS::AtMostOnce,
                false,
                bytes,
            )
            .await;
    }
}

/// Publishes reported configuration keys (QoS 1) to the shadow's `update`; true if queued.
async fn publish_report(
    client: &AsyncClient,
    cam: &anpr_protocol::CameraId,
    report: Map<String, Value>,
) -> bool {
    let Ok(bytes) = serde_json::to_vec(&ReportedUpdate::new(report)) else {
        return false;
    };
    client
        .publish(
            topics::config_shadow(cam, shadow_msg::UPDATE),
            QoS::AtLeastOnce,
            false,
            bytes,
        )
        .await
        .map_err(|e| tracing::error!(error = %e, "configuration report not queued"))
        .is_ok()
}

/// What the loop must do after a remote configuration step.
#[derive(Debug, Default)]
struct Actions {
    /// Apply these settings to the running parts (uploader, outbox, health).
    hot: Option<Config>,
    /// Reconnect with these settings.
    reconnect: Option<Config>,
    /// Report these keys now.
    report: Option<Map<String, Value>>,
}

/// The remote configuration's state in the loop: the file, what runs, the persisted state,
/// and the deadline of a connection trial.
#[derive(Debug)]
struct RemoteCtl {
    file: Config,
    running: Config,
    state: RemoteState,
    store: RemoteStore,
    deadline: Option<tokio::time::Instant>,
    trial_started: Instant,
    /// Where the configuration in force is published (the frame feed follows it).
    publish: watch::Sender<Config>,
}

impl RemoteCtl {
    /// Loads the persisted state; what cannot be used is set aside with an error logged, and
    /// the camera runs its file. A trial left by a restart gets a new deadline.
    fn open(file: Config, publish: watch::Sender<Config>) -> Self {
        let store = RemoteStore::new(&file.state_dir);
        let mut state = match store.load() {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "remote configuration state unusable; running the file");
                if let Err(e) = store.quarantine() {
                    tracing::error!(error = %e, "cannot set the state aside");
                }
                RemoteState::default()
            }
        };
        let running = match remote::effective(&file, &state.applied) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(reason = %e.reason, "remote settings invalid over this file; running the file");
                state.applied = Default::default();
                state.trial = None;
                file.clone()
            }
        };
        let deadline = state.trial.as_ref().map(|_| {
            tracing::warn!("a connection trial was in progress at the last stop; it continues");
            tokio::time::Instant::now() + Duration::from_secs(file.remote.rollback_secs)
        });
        publish.send_replace(running.clone());
        Self {
            file,
            running,
            state,
            store,
            deadline,
            trial_started: Instant::now(),
            publish,
        }
    }

    /// Parses a shadow message into a step.
    fn on_message(&self, suffix: &str, payload: &[u8], shared: &Shared) -> Step {
        let ignore = Step::Ignore { report: Map::new() };
        match suffix {
            shadow_msg::UPDATE_DELTA => {
                match serde_json::from_slice::<shadow_msg::Delta>(payload) {
                    Ok(d) => remote::on_delta(
                        &self.file,
                        &self.state,
                        d.version,
                        &d.state,
                        shadow_time(d.timestamp),
                    ),
                    Err(e) => {
                        tracing::warn!(error = %e, "malformed shadow delta ignored");
                        shared.error(format!("malformed shadow delta: {e}"));
                        ignore
                    }
                }
            }
            shadow_msg::GET_ACCEPTED => {
                match serde_json::from_slice::<shadow_msg::Document>(payload) {
                    Ok(doc) => remote::on_document(
                        &self.file,
                        &self.state,
                        &doc,
                        shadow_time(doc.timestamp),
                    ),
                    Err(e) => {
                        tracing::warn!(error = %e, "malformed shadow document ignored");
                        shared.error(format!("malformed shadow document: {e}"));
                        ignore
                    }
                }
            }
            shadow_msg::GET_REJECTED => {
                match serde_json::from_slice::<shadow_msg::Rejected>(payload) {
                    // No shadow yet: create it with what the camera runs.
                    Ok(r) if r.code == 404 => remote::on_document(
                        &self.file,
                        &self.state,
                        &Default::default(),
                        shadow_time(0),
                    ),
                    other => {
                        tracing::warn!(rejected = ?other, "shadow get refused");
                        ignore
                    }
                }
            }
            _ => {
                let r = serde_json::from_slice::<shadow_msg::Rejected>(payload);
                tracing::warn!(rejected = ?r, "configuration report refused by the shadow");
                shared.error(format!("shadow {suffix}: {r:?}"));
                ignore
            }
        }
    }

    fn save(&mut self, next: RemoteState, shared: &Shared) -> bool {
        match self.store.save(&next) {
            Ok(()) => {
                self.state = next;
                true
            }
            Err(e) => {
                // Not persisted, not applied: the shadow will deliver it again.
                tracing::error!(error = %e, "remote configuration not saved; not applied");
                shared.error(e.to_string());
                false
            }
        }
    }

    fn carry_out(&mut self, step: Step, shared: &Shared) -> Actions {
        match step {
            Step::Ignore { report } => Actions {
                report: (!report.is_empty()).then_some(report),
                ..Actions::default()
            },
            Step::Refuse { next, report } => {
                tracing::warn!(error = ?next.error, "desired configuration refused");
                if !self.save(next, shared) {
                    return Actions::default();
                }
                Actions {
                    report: Some(report),
                    ..Actions::default()
                }
            }
            Step::Apply {
                next,
                cfg,
                reconnect,
                report,
            } => {
                if !self.save(next, shared) {
                    return Actions::default();
                }
                tracing::info!(
                    version = self.state.version,
                    reconnect,
                    "remote configuration applied"
                );
                self.running = *cfg;
                self.publish.send_replace(self.running.clone());
                let mut act = Actions {
                    hot: Some(self.running.clone()),
                    ..Actions::default()
                };
                if reconnect {
                    self.deadline = Some(
                        tokio::time::Instant::now()
                            + Duration::from_secs(self.file.remote.rollback_secs),
                    );
                    self.trial_started = Instant::now();
                    act.reconnect = Some(self.running.clone());
                } else {
                    act.report = Some(report);
                }
                act
            }
        }
    }

    /// Connected: a trial in progress is confirmed; returns its report.
    fn confirm(&mut self, shared: &Shared) -> Option<Map<String, Value>> {
        self.deadline = None;
        self.state.trial.as_ref()?;
        let (next, report) = remote::confirm(&self.state);
        self.save(next, shared);
        tracing::info!("connection trial confirmed");
        Some(report)
    }

    /// The trial's deadline passed without a connection: back to the previous settings.
    fn roll_back(&mut self, shared: &Shared) -> Option<Map<String, Value>> {
        self.deadline = None;
        self.state.trial.as_ref()?;
        let waited = self.trial_started.elapsed().as_secs();
        let (next, report) = remote::rollback(&self.state, &self.file, waited);
        if !self.save(next, shared) {
            return None;
        }
        self.running = remote::in_force(&self.file, &self.state.applied);
        self.publish.send_replace(self.running.clone());
        tracing::warn!(waited, "no connection with the new settings; rolled back");
        shared.error("configuration rolled back: no connection");
        Some(report)
    }
}

struct StatusProgress {
    id: anpr_protocol::RequestId,
    stop: watch::Receiver<bool>,
    statuses: mpsc::UnboundedSender<FileStatus>,
}

impl Progress for StatusProgress {
    fn uploading(&mut self, pct: u8) {
        let _ = self.statuses.send(FileStatus {
            id: self.id.clone(),
            kind: FileStatusKind::Uploading { pct },
        });
    }
    fn should_stop(&self) -> bool {
        *self.stop.borrow()
    }
}

/// Serves requests one at a time; statuses go back to the loop, the only publisher.
async fn worker(
    ctx: Arc<Ctx>,
    mut jobs: mpsc::UnboundedReceiver<Entry>,
    stop: watch::Receiver<bool>,
    statuses: mpsc::UnboundedSender<FileStatus>,
) {
    while let Some(entry) = jobs.recv().await {
        if *stop.borrow() {
            break;
        }
        serve(&ctx, entry, stop.clone(), &statuses).await;
    }
}

async fn finish(
    ctx: &Ctx,
    statuses: &mpsc::UnboundedSender<FileStatus>,
    mut entry: Entry,
    status: FileStatusKind,
) {
    entry.phase = Phase::Done {
        status: status.clone(),
        answered: false,
    };
    if let Err(e) = ctx.journal.put(&entry) {
        tracing::error!(error = %e, "journal write failed");
        ctx.shared.error(e.to_string());
    }
    let _ = statuses.send(FileStatus {
        id: entry.req.id,
        kind: status,
    });
}

async fn serve(
    ctx: &Ctx,
    mut entry: Entry,
    mut stop: watch::Receiver<bool>,
    statuses: &mpsc::UnboundedSender<FileStatus>,
) {
    let id = entry.req.id.clone();
    let cam = ctx.cfg.camera();
    let key = topics::upload_key(&cam, &id, &entry.req.file);
    let mut attempt: u32 = 0;
    let mut restarted = false;
    loop {
        // Never start an upload for a request that expired while it waited.
        if let Some(status) = machine::recover(&entry.phase, &entry.req, clock::now_secs()) {
            tracing::info!(%id, "request expired before its upload started");
            return finish(ctx, statuses, entry, status).await;
        }
        let mut resolved = match media::resolve(&ctx.cfg.media_dir, &entry.req.file) {
            Ok(r) => r,
            Err(reason) => {
                tracing::warn!(%id, file = %entry.req.file, reason = reason.as_str(), "request not served");
                let kind = match reason {
                    ReasonCode::ForbiddenPath | ReasonCode::NotRegularFile => {
                        FileStatusKind::Rejected { reason }
                    }
                    _ => FileStatusKind::Failed { reason },
                };
                return finish(ctx, statuses, entry, kind).await;
            }
        };
        if let Some(max) = ctx.cfg.upload.max_file_bytes
            && resolved.size > max
        {
            let reason = ReasonCode::TooLarge;
            return finish(ctx, statuses, entry, FileStatusKind::Failed { reason }).await;
        }
        let mut progress = StatusProgress {
            id: id.clone(),
            stop: stop.clone(),
            statuses: statuses.clone(),
        };
        let started = Instant::now();
        let resumed = matches!(
            entry.phase,
            Phase::Uploading {
                multipart: Some(_),
                ..
            }
        );
        let r = ctx
            .uploader
            .upload(
                &ctx.journal,
                &mut entry,
                &mut resolved.file,
                resolved.size,
                &key,
                &mut progress,
            )
            .await;
        match r {
            Ok(size) => {
                tracing::info!(%id, size, secs = started.elapsed().as_secs_f32(), %key, "uploaded");
                return finish(ctx, statuses, entry, FileStatusKind::Uploaded { size }).await;
            }
            Err(UploadError::Stopped) => {
                tracing::info!(%id, "upload checkpointed for shutdown");
                return;
            }
            Err(UploadError::FileChanged) => {
                tracing::warn!(%id, "file changed during upload; starting over");
                entry.phase = Phase::Accepted;
                if let Err(e) = ctx.journal.put(&entry) {
                    ctx.shared.error(e.to_string());
                }
            }
            Err(e)
                if e.verdict() == Verdict::Refused
                    && machine::start_afresh(resumed, true, restarted) =>
            {
                tracing::warn!(%id, "resumed upload refused by S3; starting it afresh");
                restarted = true;
                entry.phase = Phase::Accepted;
                if let Err(e) = ctx.journal.put(&entry) {
                    ctx.shared.error(e.to_string());
                }
            }
            Err(e) => {
                tracing::warn!(%id, error = %e, attempt, "upload attempt failed; will resume");
                ctx.shared.error(e.to_string());
                let no_creds = e.no_credentials();
                if matches!(e, UploadError::Journal(_) | UploadError::Read(_)) {
                    let reason = ReasonCode::IoError;
                    return finish(ctx, statuses, entry, FileStatusKind::Failed { reason }).await;
                }
                attempt += 1;
                // Trying again cannot help (no such bucket…): fail now, not after every attempt.
                if attempt >= ctx.cfg.upload.max_attempts || e.verdict() == Verdict::GiveUp {
                    let reason = if no_creds {
                        ReasonCode::NoCredentials
                    } else {
                        ReasonCode::UploadFailed
                    };
                    return finish(ctx, statuses, entry, FileStatusKind::Failed { reason }).await;
                }
                let delay = machine::backoff_ms(
                    ctx.cfg.upload.retry_initial_secs.saturating_mul(1000),
                    ctx.cfg.upload.retry_max_secs.saturating_mul(1000),
                    attempt - 1,
                    rand::random::<f64>(),
                );
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(delay)) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }
}
