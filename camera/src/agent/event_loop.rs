//! The I/O loop: builds the agent's parts from the configuration, resumes the work left by the
//! last stop, then turns I/O (MQTT events, timers, the worker's statuses, the stop signal) into
//! [`Session`] events and the session's [`Action`]s into I/O. Every decision is the session's;
//! an error that cannot be acted on here is logged with its sources and counted (`Faults`).

use super::faults::{Chain, Faults};
use super::remote_ctl::RemoteCtl;
use super::session::{Action, Millis, Session, Settings};
use super::shutdown::Shutdown;
use super::worker::Worker;
use super::{AgentError, OutboxHandle, publish};
use crate::config::Config;
use crate::dispatch::Dispatcher;
use crate::feed_link::FeedTally;
use crate::journal::Entry;
use crate::mqtt;
use crate::outbox::Outbox;
use crate::pubacks::Tag;
use anpr_protocol::{CameraId, FileStatus, Health, clock};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Filter, Packet};
use rumqttc::v5::{AsyncClient, ConnectionError, Event, EventLoop};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

mod start;

use start::{queue_upload, start};

/// How long the upload worker has to stop at a part boundary at shutdown.
const WORKER_STOP: Duration = Duration::from_secs(60);
/// How long the goodbye (DISCONNECT) may take at shutdown.
const DISCONNECT_WAIT: Duration = Duration::from_secs(5);

/// Runs the agent until `shutdown`; an error only if it cannot start.
pub(super) async fn run(
    cfg: Config,
    outbox: OutboxHandle,
    shutdown: Shutdown,
    running: watch::Sender<Config>,
    feed_counts: Arc<FeedTally>,
) -> Result<(), AgentError> {
    let (mut io, mut session) = start(cfg, outbox, shutdown, running, feed_counts)?;
    let boot = session.boot(io.now(), rand::random::<f64>());
    let mut stopping = false;
    if boot > 0 {
        tracing::info!(
            delay_ms = boot,
            "first connection after a random boot delay"
        );
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(boot)) => {}
            _ = io.shutdown.recv() => stopping = true,
        }
    }
    // Asked to stop during the boot delay: straight to the shutdown.
    if !stopping {
        io.serve(&mut session).await;
    }
    // Graceful shutdown: stop the worker at a part boundary, keep the session serviced while
    // it finishes so its last statuses go out, then say goodbye.
    tracing::info!("shutting down");
    let goodbye = session.shutdown();
    io.carry_out(&mut session, goodbye).await;
    tracing::info!("stopped");
    Ok(())
}

/// What the loop drives.
struct Io {
    cfg: Config,
    cam: CameraId,
    client: AsyncClient,
    ev: EventLoop,
    shutdown: Shutdown,
    outbox: OutboxHandle,
    worker: Arc<Worker>,
    faults: Arc<Faults>,
    /// The frame feed's counts, taken by each health report.
    feed_counts: Arc<FeedTally>,
    rc: RemoteCtl,
    dispatcher: Dispatcher,
    /// The worker's queue (closed at shutdown).
    jobs: Option<mpsc::UnboundedSender<Entry>>,
    /// Statuses from the worker (and those left unacknowledged by the last stop).
    statuses: mpsc::UnboundedReceiver<FileStatus>,
    stop_uploads: watch::Sender<bool>,
    worker_task: Option<JoinHandle<()>>,
    subs_file: PathBuf,
    plate_topic: String,
    started: Instant,
    t0: tokio::time::Instant,
}

/// Whether the loop goes on after carrying out actions.
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Go,
    Stop,
}

impl Io {
    /// Now on the session's clock.
    fn now(&self) -> Millis {
        u64::try_from(self.t0.elapsed().as_millis()).unwrap_or(Millis::MAX)
    }

    /// A time on the session's clock as an instant.
    fn instant(&self, at: Millis) -> tokio::time::Instant {
        self.t0 + Duration::from_millis(at)
    }

    /// The loop proper, until the stop is asked for.
    async fn serve(&mut self, s: &mut Session) {
        loop {
            let wake = s.next_wake();
            let at = self.instant(wake.unwrap_or(0));
            let actions = tokio::select! {
                _ = self.shutdown.recv() => return,
                _ = tokio::time::sleep_until(at), if wake.is_some() => s.tick(self.now()),
                Some(st) = self.statuses.recv(), if s.is_connected() => {
                    vec![Action::PublishStatus(st)]
                }
                ev = self.ev.poll() => self.event(s, ev),
            };
            if self.carry_out(s, actions).await == Flow::Stop {
                return;
            }
        }
    }

    /// An MQTT event as a session event.
    fn event(&mut self, s: &mut Session, ev: Result<Event, ConnectionError>) -> Vec<Action> {
        let now = self.now();
        match ev {
            Ok(Event::Outgoing(rumqttc::Outgoing::Publish(pkid))) => {
                s.sent(pkid);
                Vec::new()
            }
            Ok(Event::Incoming(Packet::PubAck(ack))) => s.puback(now, ack.pkid, ack.reason),
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                let recorded = self.recorded_subscriptions();
                s.connack(now, ack.session_present, &recorded, rand::random::<f64>())
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let topic = String::from_utf8_lossy(&p.topic).into_owned();
                let outcome = self
                    .dispatcher
                    .dispatch(&topic, &p.payload, clock::now_secs());
                s.incoming(p, outcome)
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => s.suback(&ack.return_codes),
            Ok(Event::Incoming(Packet::Disconnect(d))) => {
                s.disconnect(d.reason_code);
                Vec::new()
            }
            Ok(_) => Vec::new(),
            Err(e) => s.link_lost(now, &e, rand::random::<f64>()),
        }
    }

    /// The subscriptions that made the broker's session (none recorded: subscribe).
    fn recorded_subscriptions(&self) -> String {
        match std::fs::read_to_string(&self.subs_file) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => {
                self.faults
                    .warn("subscriptions record unreadable; subscribing again", &e);
                String::new()
            }
        }
    }

    fn lock_outbox(&self) -> Option<MutexGuard<'_, Outbox>> {
        match self.outbox.lock() {
            Ok(g) => Some(g),
            Err(_) => {
                // A producer panicked while appending: the outbox is left alone.
                tracing::error!("outbox lock poisoned by a panicked producer");
                self.faults.note("outbox lock poisoned");
                None
            }
        }
    }

    /// Applies `c`'s hot settings to the uploader and the outbox.
    fn tune(&self, c: &Config) {
        self.worker
            .uploader
            .tune(c.upload.max_bytes_per_sec, c.upload.progress_step_pct);
        if let Some(mut ob) = self.lock_outbox() {
            ob.set_batching(
                c.outbox.batch_max_reads as usize,
                u64::from(c.outbox.batch_max_age_secs) * 1000,
            );
        }
    }

    /// Carries out `actions` in order (a shadow message's own actions first).
    async fn carry_out(&mut self, s: &mut Session, actions: Vec<Action>) -> Flow {
        let mut queue = VecDeque::from(actions);
        while let Some(action) = queue.pop_front() {
            match action {
                Action::Shadow { suffix, payload } => {
                    let step = self.rc.on_message(suffix, &payload, &self.faults);
                    let change = self.rc.carry_out(step, &self.faults);
                    for a in s.changed(self.now(), change).into_iter().rev() {
                        queue.push_front(a);
                    }
                }
                other => {
                    if self.act(s, other).await == Flow::Stop {
                        return Flow::Stop;
                    }
                }
            }
        }
        Flow::Go
    }

    /// Carries out one action.
    async fn act(&mut self, s: &mut Session, action: Action) -> Flow {
        match action {
            Action::Subscribe(topics) => {
                let filters = topics.into_iter().map(|t| Filter::new(t, QoS::AtLeastOnce));
                if let Err(e) = self.client.subscribe_many(filters).await {
                    self.faults.error("subscribe request failed", &e);
                    s.subscribe_not_queued();
                }
            }
            Action::RecordSubscriptions(want) => {
                if let Err(e) = std::fs::write(&self.subs_file, want) {
                    self.faults.warn(
                        "subscriptions not recorded; subscribing again at the next start",
                        &e,
                    );
                }
            }
            Action::ConfirmTrial => {
                if let Some(report) = self.rc.confirm(&self.faults) {
                    self.report(s, report).await;
                }
            }
            Action::RollBack => {
                if let Some(report) = self.rc.roll_back(&self.faults) {
                    match mqtt::options(self.rc.running()) {
                        Ok(o) => {
                            self.ev.options = o;
                            self.ev.clean();
                        }
                        Err(e) => self.faults.error("previous MQTT settings unusable", &e),
                    }
                    self.report(s, report).await;
                }
            }
            Action::PublishPresence => {
                if let Err(e) = publish::presence(&self.client, &self.cam, true).await {
                    self.faults.warn("presence not queued", &e);
                }
            }
            Action::PublishOffline => {
                if let Err(e) = publish::presence(&self.client, &self.cam, false).await {
                    self.faults.warn("offline presence not queued", &e);
                }
            }
            Action::PublishHealth => self.health().await,
            Action::PublishStatus(st) => self.status(s, st).await,
            Action::PublishSync => match publish::publish_sync(&self.client, &self.cam).await {
                Ok(()) => s.queued(Tag::Other),
                Err(e) => self.faults.error("sync not queued", &e),
            },
            Action::GetShadow => {
                if let Err(e) = publish::shadow_get(&self.client, &self.cam).await {
                    self.faults.warn("shadow get not queued", &e);
                }
            }
            Action::PublishReport(report) => self.report(s, report).await,
            Action::PublishBatch => self.batch(s).await,
            Action::AckBatch(seq) => {
                if let Some(mut ob) = self.lock_outbox()
                    && let Err(e) = ob.ack(seq)
                {
                    drop(ob);
                    self.faults.error("outbox ack failed", &e);
                }
            }
            Action::RequeueBatch => {
                if let Some(mut ob) = self.lock_outbox() {
                    ob.reset_in_flight();
                }
            }
            Action::MarkAnswered(id) => {
                if let Err(e) = self.worker.journal.mark_answered(&id) {
                    self.faults.error("journal write failed", &e);
                }
            }
            Action::Upload(entry) => match &self.jobs {
                Some(jobs) => queue_upload(jobs, entry, &self.faults),
                None => {
                    tracing::info!(id = %entry.req.id, "stopping: the request waits in the journal")
                }
            },
            Action::Tune(c) => self.tune(&c),
            Action::Reconnect(c) => match mqtt::options(&c) {
                Ok(o) => {
                    tracing::info!(
                        port = c.mqtt.port,
                        keep_alive = c.mqtt.keep_alive_secs,
                        "reconnecting with the new configuration"
                    );
                    self.ev.options = o;
                    self.ev.clean();
                    let wait = s.redialing(self.now());
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
                        _ = self.shutdown.recv() => return Flow::Stop,
                    }
                }
                Err(e) => self.faults.error("new MQTT settings unusable", &e),
            },
            Action::Ack(p) => {
                if let Err(e) = self.client.ack(&p).await {
                    self.faults.warn("ack failed", &e);
                }
            }
            Action::Note(what) => self.faults.note(what),
            Action::LinkDown(why) => self.faults.remember(why),
            Action::BackOff { until } => {
                // A connection trial's deadline cuts the back-off short.
                let until = s.trial_deadline().map_or(until, |d| d.min(until));
                tokio::select! {
                    _ = tokio::time::sleep_until(self.instant(until)) => {}
                    _ = self.shutdown.recv() => return Flow::Stop,
                }
            }
            Action::StopUploads => self.stop_uploads(s).await,
            Action::SyncOutbox => {
                if let Some(mut ob) = self.lock_outbox()
                    && let Err(e) = ob.sync()
                {
                    drop(ob);
                    self.faults.error("outbox not synced", &e);
                }
            }
            Action::Disconnect => self.disconnect().await,
            // Carried out by `carry_out`.
            Action::Shadow { .. } => {}
        }
        Flow::Go
    }

    async fn status(&mut self, s: &mut Session, st: FileStatus) {
        match publish::status(&self.client, &self.cam, &st).await {
            Ok(()) => s.status_queued(&st),
            Err(e) => self.faults.error("status not queued", &e),
        }
    }

    async fn report(
        &mut self,
        s: &mut Session,
        report: serde_json::Map<String, serde_json::Value>,
    ) {
        match publish::report(&self.client, &self.cam, report).await {
            Ok(()) => s.queued(Tag::Other),
            Err(e) => self.faults.error("configuration report not queued", &e),
        }
    }

    async fn batch(&mut self, s: &mut Session) {
        let batch = self
            .lock_outbox()
            .and_then(|mut ob| ob.next_batch(clock::now_ms()));
        let Some(b) = batch else { return };
        match self
            .client
            .publish(
                self.plate_topic.as_str(),
                QoS::AtLeastOnce,
                false,
                b.payload,
            )
            .await
        {
            Ok(()) => {
                s.batch_queued(b.seq);
                tracing::debug!(seq = b.seq, reads = b.count, "plate batch published");
            }
            Err(e) => {
                self.faults.warn("plate batch not queued", &e);
                if let Some(mut ob) = self.lock_outbox() {
                    ob.reset_in_flight();
                }
            }
        }
    }

    /// The health report: small (about 60 bytes; the frame feed's counts, when not zero, add
    /// about 10 each), QoS 0.
    async fn health(&mut self) {
        let (errs, err) = self.faults.take();
        let h = Health {
            up: self.started.elapsed().as_secs(),
            ver: env!("CARGO_PKG_VERSION").to_owned(),
            ob: self.lock_outbox().map(|ob| ob.depth()).unwrap_or(0),
            df: crate::health::disk_free_mib(&self.cfg.media_dir).unwrap_or(0),
            err,
            errs,
            feed: self.feed_counts.take(),
        };
        if let Err(e) = publish::health(&self.client, &self.cam, &h).await {
            // The feed's counts wait for the next report.
            self.feed_counts.add(h.feed);
            self.faults.warn("health report not queued", &e);
        }
    }

    /// Stops the worker at a part boundary, publishing its statuses meanwhile.
    async fn stop_uploads(&mut self, s: &mut Session) {
        if self.stop_uploads.send(true).is_err() {
            tracing::debug!("the upload worker had already stopped");
        }
        self.jobs = None;
        if let Some(mut worker) = self.worker_task.take() {
            let deadline = tokio::time::Instant::now() + WORKER_STOP;
            loop {
                tokio::select! {
                    r = &mut worker => {
                        if let Err(e) = r {
                            self.faults.error("the upload worker failed", &e);
                        }
                        break;
                    }
                    Some(st) = self.statuses.recv() => self.status(s, st).await,
                    _ = tokio::time::sleep_until(deadline) => {
                        tracing::warn!("worker did not stop in time");
                        break;
                    }
                    r = self.ev.poll() => if let Err(e) = r {
                        tracing::debug!(error = %Chain(&e), "no connection while the worker stops");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    },
                }
            }
        }
        while let Ok(st) = self.statuses.try_recv() {
            self.status(s, st).await;
        }
    }

    /// DISCONNECT, and the connection serviced until it is sent.
    async fn disconnect(&mut self) {
        if let Err(e) = self.client.disconnect().await {
            self.faults.warn("disconnect not queued", &e);
            return;
        }
        let deadline = tokio::time::Instant::now() + DISCONNECT_WAIT;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                r = self.ev.poll() => match r {
                    Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        }
    }
}
