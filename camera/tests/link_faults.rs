//! The agent's own publisher, journal and uploader, in this process, under the faults of a
//! real mobile link injected by the proxy in front of the broker: a cut at a chosen byte while
//! plate batches and upload statuses are in flight, and a silent half-open link that only the
//! MQTT keep-alive can detect. Every read and every status arrives; at most the batch that was
//! in flight is delivered twice (QoS 1; the cloud keeps one item per read id).

mod common;

use anpr_camera::agent::OutboxHandle;
use anpr_protocol::{PlateRead, ReadId};
use common::*;
use std::collections::HashSet;
use std::time::{Duration, Instant};

const BATCH: u32 = 25;

fn append_reads(outbox: &OutboxHandle, prefix: &str, n: u64) -> HashSet<String> {
    let mut ob = outbox.lock().unwrap();
    let now = anpr_protocol::clock::now_secs() * 1000;
    (0..n)
        .map(|i| {
            let id = format!("{prefix}{i:05}");
            ob.append(PlateRead {
                id: ReadId::parse(&id).unwrap(),
                t: now - 60_000 + i,
                p: format!("LF{i:05}"),
                c: 90,
                img: None,
                bb: None,
            })
            .unwrap();
            id
        })
        .collect()
}

struct Agent {
    outbox: OutboxHandle,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), anpr_camera::agent::AgentError>>,
}

impl Agent {
    fn start(mut cfg: anpr_camera::Config, keep_alive_secs: Option<u64>) -> Self {
        cfg.outbox.batch_max_reads = BATCH;
        cfg.outbox.batch_max_age_secs = 1;
        if let Some(k) = keep_alive_secs {
            // Below the file's 30 s minimum (AWS IoT's) only to keep the test short (rumqttc's
            // own minimum is 5 s): the detection is the same code, it scales with the keep-alive.
            cfg.mqtt.keep_alive_secs = k;
        }
        let outbox = anpr_camera::agent::open_outbox(&cfg).unwrap();
        let (stop, rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(
            anpr_camera::agent::Agent::builder(cfg)
                .outbox(outbox.clone())
                .run(anpr_camera::agent::Shutdown::new(rx)),
        );
        Self { outbox, stop, task }
    }

    async fn wait_empty(&self, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while self.outbox.lock().unwrap().depth() > 0 {
            assert!(Instant::now() < deadline, "the outbox did not empty");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn stop(self) {
        self.stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(60), self.task)
            .await
            .expect("the agent stops")
            .unwrap()
            .unwrap();
    }
}

fn distinct(cloud: &Cloud) -> usize {
    cloud.plate_ids().into_iter().collect::<HashSet<_>>().len()
}

/// Every expected read arrived; returns how many arrived twice, checking that only reads of
/// the batch in flight at the fault can be.
fn check_reads(cloud: &Cloud, expected: &HashSet<String>) -> usize {
    let ids = cloud.plate_ids();
    let distinct: HashSet<String> = ids.iter().cloned().collect();
    assert_eq!(&distinct, expected, "every read, none other");
    let twice = ids.len() - distinct.len();
    assert!(
        twice <= BATCH as usize,
        "only the batch in flight may come twice: {twice} redelivered"
    );
    twice
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_while_plate_batches_and_upload_statuses_are_in_flight_loses_nothing() {
    let stack = Stack::new("cam-lcut").await;
    let body = stack.media_file("clip.mp4", 2 * MIB);
    let mut cloud = stack.cloud().await;
    let agent = Agent::start(stack.config(), None);
    cloud.wait_health(20).await;

    // A slow link (every chunk 30 ms late) widens the window in which things are in flight.
    stack.mqtt_proxy.set_delay(Duration::from_millis(30));
    let expected = append_reads(&agent.outbox, "c", 4 * u64::from(BATCH));
    let id = "01LINKCUT00000000000000000";
    cloud.request(id, "clip.mp4").await;
    // Cut in the middle of the second batch (each is about 1.7 kB), statuses around it.
    let cut_at = stack.mqtt_proxy.up_bytes() + 2_500;
    stack.mqtt_proxy.cut_when_up_reaches(cut_at);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !stack.mqtt_proxy.is_cut() {
        assert!(Instant::now() < deadline, "the cut never came");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(stack.mqtt_proxy.up_bytes(), cut_at, "cut at the byte");
    let received_at_cut = cloud.plate_ids().len();
    tokio::time::sleep(Duration::from_secs(1)).await; // the link stays down for a second
    stack.mqtt_proxy.set_delay(Duration::ZERO);
    stack.mqtt_proxy.restore();

    cloud
        .wait_until(60, "every read and the upload", |c| {
            distinct(c) >= expected.len() && c.statuses_of(id).iter().any(is_uploaded)
        })
        .await;
    agent.wait_empty(30).await;
    // The outbox emptied on PUBACKs: a redelivered batch reached the cloud before it.
    cloud.drain(0).await;
    let twice = check_reads(&cloud, &expected);
    assert!(
        received_at_cut < expected.len(),
        "the cut came before everything was delivered"
    );
    assert!(stack.mqtt_proxy.connections() >= 2, "reconnected");
    assert_eq!(
        stack.object(&stack.key(id, "clip.mp4")).await.as_deref(),
        Some(&body[..])
    );
    let uploaded = cloud
        .statuses_of(id)
        .iter()
        .filter(|k| is_uploaded(k))
        .count();
    assert!((1..=2).contains(&uploaded), "{:?}", cloud.statuses_of(id));
    eprintln!(
        "cut at byte {cut_at}: {} reads, {twice} redelivered, {uploaded} uploaded statuses",
        expected.len()
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_open_link_is_detected_by_keep_alive_and_nothing_is_lost() {
    let stack = Stack::new("cam-half").await;
    let body = stack.media_file("still.jpg", 200_000);
    let mut cloud = stack.cloud().await;
    let agent = Agent::start(stack.config(), Some(5));
    cloud.wait_health(20).await;
    let before = stack.mqtt_proxy.connections();

    // The NAT forgets the mapping: the connection stays open, nothing goes through, nobody is
    // told. Reads and a request keep coming meanwhile.
    stack.mqtt_proxy.blackhole();
    let silent_since = Instant::now();
    let expected = append_reads(&agent.outbox, "h", 2 * u64::from(BATCH));
    let id = "01HALFOPEN0000000000000000";
    cloud.request(id, "still.jpg").await;

    let deadline = Instant::now() + Duration::from_secs(40);
    while stack.mqtt_proxy.connections() == before {
        assert!(
            Instant::now() < deadline,
            "the agent never noticed the dead link"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let detected = silent_since.elapsed();
    assert!(
        stack.mqtt_proxy.swallowed_bytes() > 0,
        "the agent wrote into the dead link"
    );
    cloud
        .wait_until(60, "every read and the upload", |c| {
            distinct(c) >= expected.len() && c.statuses_of(id).iter().any(is_uploaded)
        })
        .await;
    agent.wait_empty(30).await;
    cloud.drain(0).await;
    let twice = check_reads(&cloud, &expected);
    assert_eq!(
        stack.object(&stack.key(id, "still.jpg")).await.as_deref(),
        Some(&body[..])
    );
    eprintln!(
        "half-open link detected after {detected:?} (keep-alive 5 s); {} reads, {twice} redelivered",
        expected.len()
    );
    agent.stop().await;
}
