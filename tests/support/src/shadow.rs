//! A stand-in for the AWS IoT Device Shadow service on the test broker: it answers
//! `$aws/things/{thing}/shadow/name/{shadow}/get` and `…/update` with the AWS topic shapes
//! (`get/accepted|rejected`, `update/accepted|rejected`, `update/delta`), keeping documents
//! with the same rules as the in-memory adapter ([`anpr_core::Shadow`]). Tests change the
//! desired state as the cloud's UpdateThingShadow would, with [`ShadowService::desire`].

use crate::broker::{Broker, CLOUD_IDENTITY};
pub use anpr_core::Shadow;
pub use anpr_core::shadow::delta;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::{AsyncClient, Event};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Docs = Arc<Mutex<HashMap<(String, String), Shadow>>>;

/// The running stand-in; stops when dropped.
#[derive(Debug)]
pub struct ShadowService {
    client: AsyncClient,
    docs: Docs,
    /// PUBACKs received for the service's publishes.
    pubacks: tokio::sync::watch::Receiver<u64>,
    task: tokio::task::JoinHandle<()>,
}

/// `$aws/things/{thing}/shadow/name/{name}/{op…}` → (thing, name, op).
fn parse_topic(topic: &str) -> Option<(String, String, String)> {
    let rest = topic.strip_prefix("$aws/things/")?;
    let (thing, rest) = rest.split_once("/shadow/name/")?;
    let (name, op) = rest.split_once('/')?;
    Some((thing.to_owned(), name.to_owned(), op.to_owned()))
}

impl ShadowService {
    /// Connects to `broker` as the cloud identity and serves every thing's named shadows.
    pub async fn start(broker: &Broker) -> Self {
        let id = broker.identity(CLOUD_IDENTITY);
        let mut opts = broker.v5_options(&id);
        opts.set_client_id(format!("shadow-service-{}", crate::unique("s")));
        let (client, mut ev) = AsyncClient::new(opts, 64);
        let docs: Docs = Arc::default();
        client
            .subscribe("$aws/things/+/shadow/name/+/get", QoS::AtLeastOnce)
            .await
            .expect("subscribe get");
        client
            .subscribe("$aws/things/+/shadow/name/+/update", QoS::AtLeastOnce)
            .await
            .expect("subscribe update");
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let mut ready_tx = Some(ready_tx);
        let (c2, d2) = (client.clone(), docs.clone());
        let (puback_tx, pubacks) = tokio::sync::watch::channel(0u64);
        let task = tokio::spawn(async move {
            let mut subacks = 0;
            loop {
                match ev.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        puback_tx.send_modify(|n| *n += 1);
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        subacks += 1;
                        if subacks == 2
                            && let Some(tx) = ready_tx.take()
                        {
                            let _ = tx.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let topic = String::from_utf8_lossy(&p.topic).into_owned();
                        if let Some((thing, name, op)) = parse_topic(&topic) {
                            let out = serve(&d2, &thing, &name, &op, &p.payload);
                            for (t, payload) in out {
                                let _ = c2.publish(t, QoS::AtLeastOnce, false, payload).await;
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), ready_rx)
            .await
            .expect("shadow service subscribed in 10 s")
            .expect("shadow service task");
        Self {
            client,
            docs,
            pubacks,
            task,
        }
    }

    /// What the cloud does through UpdateThingShadow: merges `desired` into the named shadow
    /// and publishes the delta, returning once the broker has it (queued for an offline
    /// camera's session). Returns the shadow's new version.
    pub async fn desire(&self, thing: &str, name: &str, desired: Value) -> u64 {
        let payload = json!({"state": {"desired": desired}});
        let (version, delta) = {
            let mut g = self.docs.lock().unwrap();
            let s = g.entry((thing.to_owned(), name.to_owned())).or_default();
            let u = s
                .update(&payload, anpr_protocol::clock::now_secs())
                .expect("a valid desired document");
            (s.version, u.delta)
        };
        if let Some(d) = delta {
            let topic = format!("$aws/things/{thing}/shadow/name/{name}/update/delta");
            let mut acks = self.pubacks.clone();
            let before = *acks.borrow_and_update();
            self.client
                .publish(
                    topic,
                    QoS::AtLeastOnce,
                    false,
                    serde_json::to_vec(&d).expect("delta"),
                )
                .await
                .expect("publish delta");
            // The service's own answers are acknowledged too: wait for one more than before.
            tokio::time::timeout(Duration::from_secs(10), acks.wait_for(|n| *n > before))
                .await
                .expect("the broker acknowledged the delta")
                .expect("shadow service task");
        }
        version
    }

    /// The named shadow, if it exists.
    pub fn document(&self, thing: &str, name: &str) -> Option<Shadow> {
        self.docs
            .lock()
            .unwrap()
            .get(&(thing.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Waits until `check` holds for the named shadow, or panics after `secs` seconds.
    pub async fn wait_for(
        &self,
        thing: &str,
        name: &str,
        secs: u64,
        check: impl Fn(&Shadow) -> bool,
    ) -> Shadow {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(s) = self.document(thing, name)
                && check(&s)
            {
                return s;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "shadow {thing}/{name} did not reach the expected state in {secs} s: {:?}",
                self.document(thing, name)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for ShadowService {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The service's answer to one request: (topic, payload) pairs to publish.
fn serve(docs: &Docs, thing: &str, name: &str, op: &str, payload: &[u8]) -> Vec<(String, Vec<u8>)> {
    let base = format!("$aws/things/{thing}/shadow/name/{name}");
    let mut g = docs.lock().unwrap();
    let key = (thing.to_owned(), name.to_owned());
    let enc = |v: &Value| serde_json::to_vec(v).unwrap_or_default();
    match op {
        "get" => match g.get(&key) {
            Some(s) => vec![(
                format!("{base}/get/accepted"),
                serde_json::to_vec(&s.document(anpr_protocol::clock::now_secs()))
                    .unwrap_or_default(),
            )],
            None => vec![(
                format!("{base}/get/rejected"),
                enc(&json!({"code": 404, "message": "No shadow exists with name: '{name}'"})),
            )],
        },
        "update" => {
            let parsed: Result<Value, _> = serde_json::from_slice(payload);
            let Ok(doc) = parsed else {
                return vec![(
                    format!("{base}/update/rejected"),
                    enc(&json!({"code": 400, "message": "Payload contains invalid json"})),
                )];
            };
            let s = g.entry(key).or_default();
            match s.update(&doc, anpr_protocol::clock::now_secs()) {
                Ok(u) => {
                    let mut out = vec![(format!("{base}/update/accepted"), enc(&u.accepted))];
                    if let Some(d) = u.delta {
                        out.push((
                            format!("{base}/update/delta"),
                            serde_json::to_vec(&d).unwrap_or_default(),
                        ));
                    }
                    out
                }
                Err(r) => vec![(
                    format!("{base}/update/rejected"),
                    serde_json::to_vec(&r).unwrap_or_default(),
                )],
            }
        }
        _ => Vec::new(),
    }
}
