//! One simulated camera: the agent's MQTT session options and outbox, the protocol's messages.
//!
//! Like the agent it publishes one plate batch at a time with QoS 1 and removes it from the
//! outbox on PUBACK only, answers a file request with `accepted`, an upload to S3 and
//! `uploaded`, and keeps its persistent session across broker restarts. Unlike the agent it
//! has no media directory, journal or credentials provider: the upload body is generated and
//! sent with one S3 client shared by the fleet.

use crate::limiter::{Backoff, TokenBucket};
use crate::stats::Counters;
use anpr_camera::outbox::{Outbox, OutboxConfig, SyncPolicy, new_read_id};
use anpr_camera::pubacks::{Tag, Tracker};
use anpr_protocol::{
    CameraId, FileName, FileRequest, FileStatus, FileStatusKind, PlateRead, ReasonCode, RequestId,
    topics,
};
use rumqttc::Outgoing;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Packet, SubscribeReasonCode};
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// Where the cameras upload (moto's S3 here).
#[derive(Debug, Clone)]
pub struct S3Target {
    /// Client built once for the fleet.
    pub client: aws_sdk_s3::Client,
    /// Media bucket.
    pub bucket: String,
}

/// The connect-rate limiter shared by the fleet.
#[derive(Debug)]
pub struct Gate {
    bucket: Mutex<TokenBucket>,
    origin: Instant,
}

impl Gate {
    /// `rate` CONNECTs a second (0: unlimited), a burst of one second's worth.
    pub fn new(rate: f64) -> Self {
        Self {
            bucket: Mutex::new(TokenBucket::new(rate, rate, Duration::ZERO)),
            origin: Instant::now(),
        }
    }
    fn admit(&self) -> bool {
        let now = self.origin.elapsed();
        self.bucket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .try_take(now)
    }
}

/// Everything one camera needs.
#[derive(Debug)]
pub struct CameraSpec {
    /// Its id (= certificate CN).
    pub id: CameraId,
    /// The agent's MQTT options for it.
    pub options: MqttOptions,
    /// Its outbox directory, if it produces plate reads.
    pub outbox_dir: Option<PathBuf>,
    /// Plate reads per second.
    pub reads_per_sec: f64,
}

/// What the fleet shares.
#[derive(Debug, Clone)]
pub struct FleetCtx {
    /// Counters.
    pub counters: Arc<Counters>,
    /// The connect-rate limiter.
    pub gate: Arc<Gate>,
    /// Upload target.
    pub s3: Option<S3Target>,
    /// Bytes of each uploaded file.
    pub file_bytes: usize,
    /// Outbox batch age (compressed).
    pub batch_age_ms: u64,
    /// Turns true to stop generating reads (the drain phase).
    pub quiet: watch::Receiver<bool>,
    /// Turns true to stop.
    pub stop: watch::Receiver<bool>,
}

/// An upload finished (or not): the status to publish.
type Done = (RequestId, FileStatusKind);

const PLATES: [&str; 8] = [
    "AB123CD",
    "7CID930",
    "KA01AB1234",
    "WX62YTR",
    "B123XYZ",
    "LD19ABC",
    "9ZZZ999",
    "M4RK3",
];

fn read(now_ms: u64) -> PlateRead {
    let id = new_read_id();
    let img = FileName::parse(&format!("reads/{id}.jpg")).ok();
    PlateRead {
        t: now_ms,
        p: PLATES[rand::random_range(0..PLATES.len())].to_owned(),
        c: rand::random_range(60..=100),
        img,
        bb: Some([412, 300, 120, 40]),
        id,
    }
}

/// Publishes waiting for room in the client's request channel, oldest first. A camera never
/// awaits that channel inside its loop (the connection task drains it, but a full channel would
/// still stall the loop), so what does not fit stays here and goes out on the next turn.
#[derive(Debug, Default)]
struct Unsent(VecDeque<(String, bool, Vec<u8>, Tag)>);

impl Unsent {
    fn push(&mut self, topic: String, retain: bool, body: Vec<u8>, tag: Tag) {
        self.0.push_back((topic, retain, body, tag));
    }

    fn status(&mut self, cam: &CameraId, s: &FileStatus) {
        if let Ok(body) = anpr_protocol::encode(s) {
            self.push(topics::file_status(cam), false, body, Tag::Other);
        }
    }

    /// Hands what fits to the client, in order.
    fn flush(&mut self, client: &AsyncClient, tracker: &mut Tracker) {
        while let Some((topic, retain, body, tag)) = self.0.pop_front() {
            match client.try_publish(topic.as_str(), QoS::AtLeastOnce, retain, body.clone()) {
                Ok(()) => tracker.expect(tag),
                Err(_) => {
                    self.0.push_front((topic, retain, body, tag));
                    return;
                }
            }
        }
    }
}

/// What the connection task hands the camera's loop.
#[derive(Debug)]
enum Link {
    /// An event of the session (boxed: most are small, a few carry a whole packet).
    Event(Box<Event>),
    /// The connection failed or was lost; the task backs off and tries again.
    Down,
}

/// Drives one camera's MQTT event loop in a task of its own. `EventLoop::poll` is not
/// cancel-safe: a poll dropped by a `select!` while it connects drops a connection the broker
/// may already have made a session for and answered with CONNACK; the next CONNACK then says
/// "session present" for a session that never subscribed, and the camera's file requests are
/// dropped by the broker (the bug behind "28 requests sent, 12 received"). Here nothing cancels
/// the poll but the stop. Every (re)connect first takes a token from the gate; an attempt
/// without one counts as refused and waits (exponential back-off, jitter).
async fn drive(
    mut ev: EventLoop,
    gate: Arc<Gate>,
    counters: Arc<Counters>,
    tx: mpsc::Sender<Link>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    let mut wait = Some(tokio::time::Instant::now());
    loop {
        if let Some(at) = wait.take() {
            tokio::select! {
                _ = stop.changed() => return,
                _ = tokio::time::sleep_until(at) => {}
            }
            if !gate.admit() {
                Counters::inc(&counters.refused);
                wait = Some(tokio::time::Instant::now() + backoff.next(rand::random()));
                continue;
            }
        }
        let polled = tokio::select! {
            _ = stop.changed() => return,
            polled = ev.poll() => polled,
        };
        let link = match polled {
            Ok(e) => {
                if matches!(e, Event::Incoming(Packet::ConnAck(_))) {
                    backoff.reset();
                }
                Link::Event(Box::new(e))
            }
            Err(_) => {
                wait = Some(tokio::time::Instant::now() + backoff.next(rand::random()));
                Link::Down
            }
        };
        if tx.send(link).await.is_err() {
            return;
        }
    }
}

/// Upload attempts before a camera reports `failed` (the agent retries an upload with back-off
/// too; moto under a fleet's burst of uploads refuses some).
const UPLOAD_ATTEMPTS: u32 = 5;

fn upload(ctx: &FleetCtx, cam: &CameraId, req: FileRequest, done: mpsc::Sender<Done>) {
    let s3 = ctx.s3.clone();
    let size = ctx.file_bytes;
    let key = topics::upload_key(cam, &req.id, &req.file);
    let cam = cam.clone();
    tokio::spawn(async move {
        let Some(s3) = s3 else {
            let kind = FileStatusKind::Failed {
                reason: ReasonCode::NoCredentials,
            };
            let _ = done.send((req.id, kind)).await;
            return;
        };
        let mut kind = FileStatusKind::Failed {
            reason: ReasonCode::UploadFailed,
        };
        for attempt in 1..=UPLOAD_ATTEMPTS {
            let put = s3
                .client
                .put_object()
                .bucket(&s3.bucket)
                .key(&key)
                .body(vec![b'x'; size].into())
                .send()
                .await;
            match put {
                Ok(_) => {
                    kind = FileStatusKind::Uploaded { size: size as u64 };
                    break;
                }
                Err(e) => {
                    eprintln!("{cam}: upload attempt {attempt} failed: {e}");
                    if attempt < UPLOAD_ATTEMPTS {
                        tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
                    }
                }
            }
        }
        let _ = done.send((req.id, kind)).await;
    });
}

/// Runs one camera until `ctx.stop` turns true.
pub async fn run(spec: CameraSpec, mut ctx: FleetCtx) {
    let cam = spec.id.clone();
    let c = ctx.counters.clone();
    let (client, ev) = AsyncClient::new(spec.options, 256);
    let (link_tx, mut link_rx) = mpsc::channel::<Link>(64);
    let driver = tokio::spawn(drive(
        ev,
        ctx.gate.clone(),
        c.clone(),
        link_tx,
        ctx.stop.clone(),
    ));
    let mut outbox = spec.outbox_dir.as_ref().and_then(|d| {
        Outbox::open(
            d,
            OutboxConfig {
                batch_max_age_ms: ctx.batch_age_ms,
                sync: SyncPolicy::OnDemand,
                ..OutboxConfig::default()
            },
        )
        .map_err(|e| eprintln!("{cam}: outbox: {e}"))
        .ok()
    });
    let plate_topic = topics::plate_reads_basic_ingest(topics::PLATE_RULE, &cam);
    let request_topic = topics::file_request(&cam);
    let (done_tx, mut done_rx) = mpsc::channel::<Done>(16);
    let mut tracker = Tracker::default();
    let mut unsent = Unsent::default();
    let mut batch_in_flight: Option<u64> = None;
    let mut connected = false;
    // The broker granted the subscription in the current session (SUBACK). Like the agent's
    // record of granted subscriptions, not the CONNACK's "session present": a session can be
    // present without it (made by a CONNECT whose CONNACK never arrived).
    let mut subscribed = false;
    let mut subscribe = false;
    let mut ever_subscribed = false;
    // Requests already answered: a redelivery (QoS 1 after a reconnect) is acknowledged only.
    let mut seen: HashSet<RequestId> = HashSet::new();
    let reads = spec.reads_per_sec > 0.0 && outbox.is_some();
    let gap = |r: f64| Duration::from_secs_f64(-(1.0 - rand::random::<f64>()).ln() / r);
    let mut next_read = tokio::time::Instant::now() + gap(spec.reads_per_sec.max(1e-9));
    let mut batch_tick = tokio::time::interval(Duration::from_millis(
        (ctx.batch_age_ms / 4).clamp(10, 1000),
    ));
    batch_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        if connected {
            if subscribe
                && client
                    .try_subscribe(request_topic.as_str(), QoS::AtLeastOnce)
                    .is_ok()
            {
                subscribe = false;
            }
            unsent.flush(&client, &mut tracker);
        }
        let generating = reads && !*ctx.quiet.borrow();
        tokio::select! {
            _ = ctx.stop.changed() => break,
            _ = tokio::time::sleep_until(next_read), if generating => {
                if let Some(ob) = outbox.as_mut() && ob.append(read(anpr_protocol::clock::now_ms())).is_ok() {
                    Counters::inc(&c.reads_generated);
                }
                next_read += gap(spec.reads_per_sec);
                if next_read < tokio::time::Instant::now() {
                    next_read = tokio::time::Instant::now();
                }
            }
            _ = batch_tick.tick(), if reads && connected && batch_in_flight.is_none() => {
                let batch = outbox.as_mut().and_then(|ob| ob.next_batch(anpr_protocol::clock::now_ms()));
                if let Some(b) = batch {
                    if client.try_publish(plate_topic.as_str(), QoS::AtLeastOnce, false, b.payload).is_ok() {
                        tracker.expect(Tag::Batch(b.seq));
                        batch_in_flight = Some(b.seq);
                        Counters::inc(&c.batches_sent);
                    } else if let Some(ob) = outbox.as_mut() {
                        ob.reset_in_flight();
                    }
                }
            }
            Some((id, kind)) = done_rx.recv() => unsent.status(&cam, &FileStatus { id, kind }),
            link = link_rx.recv() => match link {
                None => break,
                Some(Link::Down) => {
                    if connected {
                        connected = false;
                        c.connected.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                        Counters::inc(&c.disconnects);
                    }
                }
                Some(Link::Event(e)) => match *e {
                    Event::Incoming(Packet::ConnAck(ack)) => {
                        connected = true;
                        c.connected.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        Counters::inc(&c.connacks);
                        if !ack.session_present {
                            // a new session: what was in flight and subscribed is gone with the old one
                            subscribed = false;
                            if let Some(ob) = outbox.as_mut() { ob.reset_in_flight(); }
                            tracker = Tracker::default();
                            batch_in_flight = None;
                        }
                        subscribe = !subscribed;
                        unsent.push(topics::presence(&cam), true,
                            anpr_camera::mqtt::presence_payload(true), Tag::Other);
                    }
                    Event::Incoming(Packet::SubAck(s)) => {
                        if s.return_codes.iter().all(|r| matches!(r, SubscribeReasonCode::Success(_))) {
                            subscribed = true;
                            if !std::mem::replace(&mut ever_subscribed, true) {
                                Counters::inc(&c.subscribed);
                            }
                        } else {
                            eprintln!("{cam}: subscription refused: {:?}", s.return_codes);
                        }
                    }
                    Event::Outgoing(Outgoing::Publish(pkid)) => tracker.sent(pkid),
                    Event::Incoming(Packet::PubAck(ack)) => {
                        if let Some(Tag::Batch(seq)) = tracker.acked(ack.pkid) {
                            batch_in_flight = None;
                            if let Some(ob) = outbox.as_mut() && ob.ack(seq).is_ok() {
                                Counters::inc(&c.batches_acked);
                            }
                        }
                    }
                    Event::Incoming(Packet::Publish(p)) => {
                        let _ = client.try_ack(&p);
                        if p.topic[..] == *request_topic.as_bytes() {
                            match anpr_protocol::decode::<FileRequest>(&p.payload) {
                                Ok(req) if seen.insert(req.id.clone()) => {
                                    Counters::inc(&c.requests_received);
                                    unsent.status(&cam, &FileStatus { id: req.id.clone(), kind: FileStatusKind::Accepted });
                                    upload(&ctx, &cam, req, done_tx.clone());
                                }
                                Ok(_) => Counters::inc(&c.requests_redelivered),
                                Err(e) => eprintln!("{cam}: bad file request: {e}"),
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    driver.abort();
    if connected {
        c.connected
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}
