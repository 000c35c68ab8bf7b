//! The cloud side: two persistent sessions of the `cloud-backend` identity that send file
//! requests (as the request API's IoT data-plane publish does) and play the two IoT rules, each
//! on its own session as AWS runs them independently: plate batches go to
//! `plate_ingest::handle` (the Lambda's own code) into the in-memory store; statuses are timed,
//! and a request is `ready` when its object is in S3 with the size the camera announced (what
//! upload-completed checks on the S3 event).

use crate::camera::S3Target;
use crate::stats::Counters;
use anpr_core::plates::{IngestPolicy, MemoryPlateReadStore};
use anpr_protocol::{
    CameraId, FileName, FileRequest, FileStatus, FileStatusKind, RequestId, topics,
};
use anpr_test_support::broker::{Broker, CLOUD_IDENTITY};
use plate_ingest::RuleEvent;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::{AsyncClient, Event};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

const RULE_PREFIX: &str = "$aws/rules/anpr_plate_reads/";

/// One request's times since it was published.
#[derive(Debug, Clone)]
struct Timing {
    camera: CameraId,
    file: FileName,
    sent: Instant,
    accepted: Option<Duration>,
    ready: Option<Duration>,
    /// Created while the broker was down ([`Cloud::set_outage`]).
    in_outage: bool,
}

#[derive(Debug, Default)]
struct State {
    requests: HashMap<RequestId, Timing>,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What a cloud session does with the messages it receives.
#[derive(Clone)]
enum Role {
    /// The status rule: times `accepted` and checks S3 on `uploaded`.
    Statuses {
        state: Arc<Mutex<State>>,
        s3: Option<S3Target>,
    },
    /// The plate rule: hands each batch to plate-ingest.
    Plates { store: MemoryPlateReadStore },
}

/// One persistent session of the cloud identity, subscribed to `filter` (again whenever the
/// broker has no session for it); each message is handled, then acknowledged.
fn session(
    broker: &Broker,
    client_id: &str,
    filter: String,
    role: Role,
    counters: Arc<Counters>,
    ready: Arc<AtomicBool>,
) -> (AsyncClient, tokio::task::JoinHandle<()>) {
    let id = broker.identity(CLOUD_IDENTITY);
    let mut opts = broker.v5_options(&id);
    opts.set_client_id(client_id.to_owned());
    opts.set_clean_start(false);
    opts.set_session_expiry_interval(Some(3600));
    opts.set_manual_acks(true);
    let (client, mut ev) = AsyncClient::new(opts, 65_536);
    let cl = client.clone();
    let task = tokio::spawn(async move {
        let policy = IngestPolicy::default();
        loop {
            match ev.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    if ack.session_present {
                        ready.store(true, Ordering::SeqCst);
                    } else {
                        let _ = cl.subscribe(filter.as_str(), QoS::AtLeastOnce).await;
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => ready.store(true, Ordering::SeqCst),
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let topic = String::from_utf8_lossy(&p.topic).into_owned();
                    match &role {
                        Role::Plates { store } => {
                            if let Some(rest) = topic.strip_prefix(RULE_PREFIX) {
                                ingest(store, &policy, &counters, rest, &p.payload).await;
                            }
                        }
                        Role::Statuses { state, s3 } => {
                            on_status(state, &counters, s3.as_ref(), &topic, &p.payload);
                        }
                    }
                    let _ = cl.ack(&p).await;
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    (client, task)
}

/// The running cloud side: two sessions, as the deployed system has two rules and functions
/// that do not wait for each other: statuses (and the requests, published like the request
/// API's data-plane publish) on one, plate batches on the other, so a backlog of plate
/// batches does not delay a status.
#[derive(Debug)]
pub struct Cloud {
    client: AsyncClient,
    state: Arc<Mutex<State>>,
    subscribed: [Arc<AtomicBool>; 2],
    outage: AtomicBool,
    /// Where the ingest rule stores reads.
    pub store: MemoryPlateReadStore,
    tasks: [tokio::task::JoinHandle<()>; 2],
}

impl Cloud {
    /// Connects the two sessions and subscribes them to statuses and the plate rule's topic.
    pub fn start(broker: &Broker, counters: Arc<Counters>, s3: Option<S3Target>) -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let store = MemoryPlateReadStore::default();
        let subscribed = [
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        ];
        let (client, statuses) = session(
            broker,
            CLOUD_IDENTITY,
            "+/file/status".to_owned(),
            Role::Statuses {
                state: state.clone(),
                s3,
            },
            counters.clone(),
            subscribed[0].clone(),
        );
        let (_, plates) = session(
            broker,
            &format!("{CLOUD_IDENTITY}-plate-rule"),
            format!("{RULE_PREFIX}+/plates"),
            Role::Plates {
                store: store.clone(),
            },
            counters,
            subscribed[1].clone(),
        );
        Self {
            client,
            state,
            subscribed,
            outage: AtomicBool::new(false),
            store,
            tasks: [statuses, plates],
        }
    }

    /// True once the subscriptions are in place.
    pub fn subscribed(&self) -> bool {
        self.subscribed.iter().all(|s| s.load(Ordering::SeqCst))
    }

    /// Publishes a file request to `camera` (queued in the client while the broker is down).
    pub async fn request(&self, camera: &CameraId, counters: &Counters) {
        let Ok(id) = RequestId::parse(&ulid::Ulid::new().to_string()) else {
            return;
        };
        let Ok(file) = FileName::parse("clips/sim.mp4") else {
            return;
        };
        let at = anpr_protocol::clock::now_ms() / 1000;
        let req = FileRequest {
            id: id.clone(),
            file: file.clone(),
            at,
            exp: at + 3600,
        };
        let Ok(body) = anpr_protocol::encode(&req) else {
            return;
        };
        lock(&self.state).requests.insert(
            id,
            Timing {
                camera: camera.clone(),
                file,
                sent: Instant::now(),
                accepted: None,
                ready: None,
                in_outage: self.outage.load(Ordering::SeqCst),
            },
        );
        if self
            .client
            .publish(topics::file_request(camera), QoS::AtLeastOnce, false, body)
            .await
            .is_ok()
        {
            Counters::inc(&counters.requests_sent);
        }
    }

    /// Marks the requests created from now on as created during the outage (or not).
    pub fn set_outage(&self, on: bool) {
        self.outage.store(on, Ordering::SeqCst);
    }

    /// Requests created during the outage: created, `accepted`, ready.
    pub fn outage_requests(&self) -> [u64; 3] {
        let s = lock(&self.state);
        s.requests
            .values()
            .filter(|t| t.in_outage)
            .fold([0; 3], |[n, a, r], t| {
                [
                    n + 1,
                    a + u64::from(t.accepted.is_some()),
                    r + u64::from(t.ready.is_some()),
                ]
            })
    }

    /// Request → `accepted` and request → ready latencies so far.
    pub fn latencies(&self) -> (Vec<Duration>, Vec<Duration>) {
        let s = lock(&self.state);
        let accepted = s.requests.values().filter_map(|t| t.accepted).collect();
        let ready = s.requests.values().filter_map(|t| t.ready).collect();
        (accepted, ready)
    }
}

impl Drop for Cloud {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The plate rule: the event AWS would build (`topic(1)` is the camera) handed to the
/// Lambda's handler.
async fn ingest(
    store: &MemoryPlateReadStore,
    policy: &IngestPolicy,
    counters: &Counters,
    rule_topic: &str,
    payload: &[u8],
) {
    let Ok((camera, _)) = topics::parse_camera_topic(rule_topic) else {
        return;
    };
    let Ok(event) = serde_json::to_value(RuleEvent::new(&camera, payload)) else {
        return;
    };
    // No camera is registered with an organisation here: reads are stored without one (the
    // simulator counts them; no plate search is made).
    let cameras = anpr_core::memory::MemoryCameraRegistry::default();
    match plate_ingest::handle(
        store,
        &cameras,
        policy,
        &event,
        anpr_protocol::clock::now_ms(),
    )
    .await
    {
        Ok(report) => {
            counters
                .reads_written
                .fetch_add(report.stored as u64, Ordering::Relaxed);
            Counters::inc(&counters.batches_ingested);
        }
        Err(e) => eprintln!("cloud: batch of {camera} not stored: {e}"),
    }
}

fn on_status(
    state: &Arc<Mutex<State>>,
    counters: &Arc<Counters>,
    s3: Option<&S3Target>,
    topic: &str,
    payload: &[u8],
) {
    let Ok((camera, "file/status")) = topics::parse_camera_topic(topic) else {
        return;
    };
    let Ok(status) = anpr_protocol::decode::<FileStatus>(payload) else {
        return;
    };
    let mut s = lock(state);
    let Some(t) = s.requests.get_mut(&status.id) else {
        return;
    };
    if t.camera != camera {
        return; // another camera's request: ignored (the broker's ACL already prevents it)
    }
    match status.kind {
        FileStatusKind::Accepted if t.accepted.is_none() => {
            t.accepted = Some(t.sent.elapsed());
            Counters::inc(&counters.accepted);
        }
        FileStatusKind::Uploaded { size } if t.ready.is_none() => {
            let Some(s3) = s3.cloned() else { return };
            let key = topics::upload_key(&camera, &status.id, &t.file);
            let (state, counters, id) = (state.clone(), counters.clone(), status.id);
            tokio::spawn(async move {
                // a refused HEAD (moto busy) is asked again; a missing object or another
                // size is a failure
                let mut found = false;
                for attempt in 1..=5u32 {
                    match s3
                        .client
                        .head_object()
                        .bucket(&s3.bucket)
                        .key(&key)
                        .send()
                        .await
                    {
                        Ok(h) => {
                            found = h.content_length() == Some(size as i64);
                            break;
                        }
                        Err(e) if e.as_service_error().is_some_and(|e| e.is_not_found()) => break,
                        Err(e) => {
                            eprintln!("cloud: HEAD {key} attempt {attempt} failed: {e}");
                            if attempt < 5 {
                                tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
                            }
                        }
                    }
                }
                let mut s = lock(&state);
                if let Some(t) = s.requests.get_mut(&id).filter(|t| t.ready.is_none()) {
                    if found {
                        t.ready = Some(t.sent.elapsed());
                        Counters::inc(&counters.ready);
                    } else {
                        Counters::inc(&counters.failed);
                    }
                }
            });
        }
        FileStatusKind::Failed { .. }
        | FileStatusKind::Rejected { .. }
        | FileStatusKind::Expired
            if t.ready.is_none() =>
        {
            Counters::inc(&counters.failed);
        }
        _ => {}
    }
}
