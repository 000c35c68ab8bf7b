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
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
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

async fn publish(
    client: &AsyncClient,
    tracker: &mut Tracker,
    topic: String,
    retain: bool,
    body: Vec<u8>,
) {
    // try_publish: never wait on the request channel inside the loop that drains it
    if client
        .try_publish(topic, QoS::AtLeastOnce, retain, body)
        .is_ok()
    {
        tracker.expect(Tag::Other);
    }
}

async fn status(client: &AsyncClient, tracker: &mut Tracker, cam: &CameraId, s: FileStatus) {
    if let Ok(body) = anpr_protocol::encode(&s) {
        publish(client, tracker, topics::file_status(cam), false, body).await;
    }
}

fn upload(ctx: &FleetCtx, cam: &CameraId, req: FileRequest, done: mpsc::Sender<Done>) {
    let s3 = ctx.s3.clone();
    let size = ctx.file_bytes;
    let key = topics::upload_key(cam, &req.id, &req.file);
    tokio::spawn(async move {
        let kind = match s3 {
            Some(s3) => match s3
                .client
                .put_object()
                .bucket(&s3.bucket)
                .key(key)
                .body(vec![b'x'; size].into())
                .send()
                .await
            {
                Ok(_) => FileStatusKind::Uploaded { size: size as u64 },
                Err(_) => FileStatusKind::Failed {
                    reason: ReasonCode::UploadFailed,
                },
            },
            None => FileStatusKind::Failed {
                reason: ReasonCode::NoCredentials,
            },
        };
        let _ = done.send((req.id, kind)).await;
    });
}

/// Runs one camera until `ctx.stop` turns true. Every (re)connect takes a token from the gate
/// first; an attempt without one counts as refused and waits (exponential back-off, jitter).
pub async fn run(spec: CameraSpec, mut ctx: FleetCtx) {
    let cam = spec.id.clone();
    let c = ctx.counters.clone();
    let (client, mut ev) = AsyncClient::new(spec.options, 256);
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
    let mut batch_in_flight: Option<u64> = None;
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    // None: connected or connecting; Some(t): waiting to try again at t.
    let mut wait: Option<tokio::time::Instant> = Some(tokio::time::Instant::now());
    let mut connected = false;
    let reads = spec.reads_per_sec > 0.0 && outbox.is_some();
    let gap = |r: f64| Duration::from_secs_f64(-(1.0 - rand::random::<f64>()).ln() / r);
    let mut next_read = tokio::time::Instant::now() + gap(spec.reads_per_sec.max(1e-9));
    let mut batch_tick = tokio::time::interval(Duration::from_millis(
        (ctx.batch_age_ms / 4).clamp(10, 1000),
    ));
    batch_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let far = || tokio::time::Instant::now() + Duration::from_secs(86_400);
    loop {
        let generating = reads && !*ctx.quiet.borrow();
        tokio::select! {
            _ = ctx.stop.changed() => break,
            _ = tokio::time::sleep_until(wait.unwrap_or_else(far)), if wait.is_some() => {
                if ctx.gate.admit() {
                    wait = None;
                } else {
                    Counters::inc(&c.refused);
                    wait = Some(tokio::time::Instant::now() + backoff.next(rand::random()));
                }
            }
            _ = tokio::time::sleep_until(next_read), if generating => {
                if let Some(ob) = outbox.as_mut() && ob.append(read(crate::now_ms())).is_ok() {
                    Counters::inc(&c.reads_generated);
                }
                next_read += gap(spec.reads_per_sec);
                if next_read < tokio::time::Instant::now() {
                    next_read = tokio::time::Instant::now();
                }
            }
            _ = batch_tick.tick(), if reads && connected && batch_in_flight.is_none() => {
                let batch = outbox.as_mut().and_then(|ob| ob.next_batch(crate::now_ms()));
                if let Some(b) = batch
                    && client.try_publish(plate_topic.as_str(), QoS::AtLeastOnce, false, b.payload).is_ok()
                {
                    tracker.expect(Tag::Batch(b.seq));
                    batch_in_flight = Some(b.seq);
                    Counters::inc(&c.batches_sent);
                }
            }
            Some((id, kind)) = done_rx.recv() => {
                status(&client, &mut tracker, &cam, FileStatus { id, kind }).await;
            }
            ev = ev.poll(), if wait.is_none() => match ev {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    connected = true;
                    backoff.reset();
                    c.connected.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    Counters::inc(&c.connacks);
                    if !ack.session_present {
                        // a new session: what was in flight is gone with the old one
                        let _ = client.try_subscribe(request_topic.as_str(), QoS::AtLeastOnce);
                        if let Some(ob) = outbox.as_mut() { ob.reset_in_flight(); }
                        tracker = Tracker::default();
                        batch_in_flight = None;
                    }
                    publish(&client, &mut tracker, topics::presence(&cam), true,
                        anpr_camera::mqtt::presence_payload(true)).await;
                }
                Ok(Event::Outgoing(Outgoing::Publish(pkid))) => tracker.sent(pkid),
                Ok(Event::Incoming(Packet::PubAck(ack))) => {
                    if let Some(Tag::Batch(seq)) = tracker.acked(ack.pkid) {
                        batch_in_flight = None;
                        if let Some(ob) = outbox.as_mut() && ob.ack(seq).is_ok() {
                            Counters::inc(&c.batches_acked);
                        }
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let _ = client.try_ack(&p);
                    if p.topic[..] == *request_topic.as_bytes() {
                        Counters::inc(&c.requests_received);
                        match anpr_protocol::decode::<FileRequest>(&p.payload) {
                            Ok(req) => {
                                status(&client, &mut tracker, &cam,
                                    FileStatus { id: req.id.clone(), kind: FileStatusKind::Accepted }).await;
                                upload(&ctx, &cam, req, done_tx.clone());
                            }
                            Err(e) => eprintln!("{cam}: bad file request: {e}"),
                        }
                    }
                }
                Ok(_) => {}
                Err(_) => {
                    if connected {
                        connected = false;
                        c.connected.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                        Counters::inc(&c.disconnects);
                    }
                    wait = Some(tokio::time::Instant::now() + backoff.next(rand::random()));
                }
            }
        }
    }
    if connected {
        c.connected
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
    let _ = client.disconnect().await;
}
