//! The AWS IoT Device Shadow service stand-in ([`anpr_stand_ins::shadow`], documents in
//! memory) on the test broker: a cloud-side client answers every thing's
//! `$aws/things/{thing}/shadow/name/{shadow}/get` and `…/update`. Tests change the desired
//! state as the cloud's UpdateThingShadow would, with [`ShadowService::desire`].

use crate::broker::{Broker, CLOUD_IDENTITY};
pub use anpr_core::Shadow;
pub use anpr_core::shadow::delta;
use anpr_stand_ins::shadow::{MemoryShadows, Request, ShadowDocs as _};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::{AsyncClient, Event};
use serde_json::{Value, json};
use std::time::Duration;

/// The running stand-in; stops when dropped.
#[derive(Debug)]
pub struct ShadowService {
    client: AsyncClient,
    docs: MemoryShadows,
    /// PUBACKs received for the service's publishes.
    pubacks: tokio::sync::watch::Receiver<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl ShadowService {
    /// Connects to `broker` as the cloud identity and serves every thing's named shadows.
    pub async fn start(broker: &Broker) -> Self {
        let id = broker.identity(CLOUD_IDENTITY);
        let mut opts = broker.v5_options(&id);
        opts.set_client_id(format!("shadow-service-{}", crate::unique("s")));
        let (client, mut ev) = AsyncClient::new(opts, 64);
        let docs = MemoryShadows::default();
        for filter in anpr_stand_ins::shadow::request_filters("+") {
            client
                .subscribe(filter, QoS::AtLeastOnce)
                .await
                .expect("subscribe to the shadow requests");
        }
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
                        if let Some(req) = Request::parse(&topic) {
                            let now = anpr_protocol::clock::now_secs();
                            let answer =
                                anpr_stand_ins::shadow::answer(&d2, req, &p.payload, now).await;
                            for (t, payload) in answer.messages {
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
        let u = self
            .docs
            .apply(thing, name, &payload, anpr_protocol::clock::now_secs())
            .expect("a valid desired document");
        let version = u.accepted["version"]
            .as_u64()
            .expect("the accepted version");
        if let Some(d) = u.delta {
            let topic =
                anpr_stand_ins::shadow::topic(thing, name, anpr_protocol::shadow::UPDATE_DELTA);
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
        self.docs.get(thing, name)
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
