//! The AWS IoT Core stand-in: an embedded rumqttd broker with
//! - an MQTT 5 listener over TLS that requires a client certificate issued by the local CA
//!   (the cameras' listener, like IoT Core's port 8883), and
//! - an MQTT 3.1.1-over-WebSocket listener for the web console (rumqttd's WebSocket listener
//!   speaks 3.1.1 only), which admits a browser only with a token of the local issuer, from the
//!   console's origin, and within [`crate::web_access`]'s topic policy.
//!
//! In-process links (`Broker::link`) stand in for the IoT data plane's `Publish`
//! ([`LinkPublisher`]) and for the topic rules that invoke Lambdas ([`crate::rules`]).
//! Not faithful in two ways, both documented: no per-camera topic ACL for cameras (IoT
//! policies; web clients have theirs), and offline sessions are kept in memory only.

use anpr_core::PublishError;
use anpr_core::ports::DevicePublisher;
use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::{
    Broker, Config, ConnectionSettings, RouterConfig, ServerSettings, TlsConfig, TopicPolicy,
};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// The broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// An in-process link could not be made.
    #[error("broker link: {0}")]
    Link(#[source] Box<rumqttd::local::LinkError>),
    /// A listener did not come up.
    #[error("broker listener {0} did not start")]
    Listener(SocketAddr),
}

/// Addresses and TLS files of the broker.
#[derive(Debug, Clone)]
pub struct BrokerSettings {
    /// MQTT 5 over TLS (cameras).
    pub mqtt_tls: SocketAddr,
    /// MQTT 3.1.1 over WebSocket (console).
    pub ws: SocketAddr,
    /// CA that issued the client certificates.
    pub ca: String,
    /// Server certificate.
    pub cert: String,
    /// Server key.
    pub key: String,
    /// The console's origins (`http://host:port`): the only ones a WebSocket handshake may name.
    pub console_origins: Vec<String>,
    /// Who may connect over WebSocket and what web clients may do.
    pub web: Arc<crate::web_access::WebAccess>,
    /// Told of every connection and disconnection ([`crate::presence_events`]).
    pub lifecycle: rumqttd::LifecycleHook,
}

/// The in-process link that stands in for the IoT data plane's `Publish`; the only client
/// that may publish under `$aws/events/`.
pub const DATA_PLANE_LINK: &str = "anpr-local-iot-data";

fn connections() -> ConnectionSettings {
    ConnectionSettings {
        connection_timeout_ms: 60_000,
        // Above AWS IoT's 128 KiB so the broker never refuses what IoT Core would take.
        max_payload_size: 256 * 1024,
        max_inflight_count: 100,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    }
}

/// Starts the broker, makes one in-process link per name in `links` (made before the
/// listeners start, which then block their thread), and waits until the listeners accept
/// connections. The broker's threads live as long as the process.
pub async fn start(s: &BrokerSettings, links: &[&str]) -> Result<Vec<Link>, BrokerError> {
    let tls = ServerSettings {
        name: "cameras-mqtt5-tls".into(),
        listen: s.mqtt_tls,
        tls: Some(TlsConfig::Rustls {
            capath: Some(s.ca.clone()),
            certpath: s.cert.clone(),
            keypath: s.key.clone(),
        }),
        next_connection_delay_ms: 1,
        connections: connections(),
        websocket_origins: None,
    };
    let mut ws = ServerSettings {
        name: "console-ws".into(),
        listen: s.ws,
        tls: None,
        next_connection_delay_ms: 1,
        connections: connections(),
        websocket_origins: Some(s.console_origins.clone()),
    };
    let web = s.web.clone();
    ws.set_auth_handler(move |client_id, _user, password| {
        let ok = web.connect(&client_id, &password, anpr_protocol::clock::now_secs());
        async move { ok }
    });
    let web = s.web.clone();
    let policy = TopicPolicy(Arc::new(move |client, topic, publish| {
        (!publish || crate::presence_events::may_publish(client, topic, DATA_PLANE_LINK))
            && web.allows(client, topic, publish)
    }));
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: 1000,
            max_outgoing_packet_count: 200,
            max_segment_size: 100 * 1024 * 1024,
            max_segment_count: 10,
            topic_policy: Some(policy),
            lifecycle_hook: Some(s.lifecycle.clone()),
            ..RouterConfig::default()
        },
        v5: Some(HashMap::from([("1".to_owned(), tls)])),
        ws: Some(HashMap::from([("1".to_owned(), ws)])),
        ..Config::default()
    };
    let names: Vec<String> = links.iter().map(|n| (*n).to_owned()).collect();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("rumqttd".into())
        .spawn(move || {
            let mut broker = Broker::new(config);
            let made: Result<Vec<Link>, _> = names
                .iter()
                .map(|n| broker.link(n).map_err(Box::new))
                .collect();
            let ok = made.is_ok();
            let _ = tx.send(made);
            if ok && let Err(e) = broker.start() {
                tracing::error!(error = %e, "broker stopped");
            }
        })
        .map_err(|_| BrokerError::Listener(s.mqtt_tls))?;
    let made = rx
        .await
        .map_err(|_| BrokerError::Listener(s.mqtt_tls))?
        .map_err(BrokerError::Link)?;
    for addr in [s.mqtt_tls, s.ws] {
        wait_listening(addr).await?;
    }
    Ok(made)
}

/// How long the broker's listeners may take to come up. Generous: a loaded machine (a test
/// suite starting many stacks on two cores) can take seconds to start the listener threads.
const LISTEN_WITHIN: std::time::Duration = std::time::Duration::from_secs(30);

/// Waits until something listens on `addr` (without connecting, which the broker would log
/// as a failed handshake).
async fn wait_listening(addr: SocketAddr) -> Result<(), BrokerError> {
    let deadline = tokio::time::Instant::now() + LISTEN_WITHIN;
    while tokio::time::Instant::now() < deadline {
        if listening(addr) {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    Err(BrokerError::Listener(addr))
}

/// Whether a socket listens on `addr`: binding it fails with `AddrInUse` then.
///
/// The probe binds with `SO_REUSEADDR` and never listens, so on Linux it cannot take the port
/// from the broker starting beside it: two such binds may share a port as long as neither
/// listens, and the broker's listener (tokio sets `SO_REUSEADDR` too) then binds and listens
/// while the probe holds it. A probe that listened (`std::net::TcpListener::bind`) could make
/// the broker's own bind fail, and the listener would never come up.
fn listening(addr: SocketAddr) -> bool {
    probe(addr).is_err_and(|e| e.kind() == std::io::ErrorKind::AddrInUse)
}

/// A socket bound to `addr` with `SO_REUSEADDR`, not listening.
fn probe(addr: SocketAddr) -> std::io::Result<tokio::net::TcpSocket> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    Ok(socket)
}

/// The IoT data plane's `Publish` stand-in: publishes through an in-process broker link.
#[derive(Clone)]
pub struct LinkPublisher {
    tx: Arc<Mutex<LinkTx>>,
}

impl LinkPublisher {
    /// Publishes through `tx`.
    pub fn new(tx: LinkTx) -> Self {
        Self {
            tx: Arc::new(Mutex::new(tx)),
        }
    }
}

impl std::fmt::Debug for LinkPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkPublisher")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("broker link refused the publish: {0}")]
struct LinkFailed(String);

impl DevicePublisher for LinkPublisher {
    async fn publish(&self, topic: &str, payload: Vec<u8>, _qos: u8) -> Result<(), PublishError> {
        // Links publish at QoS 0; the cloud side of the local stack is in the same process.
        let r = self
            .tx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .publish(topic.to_owned(), payload);
        r.map(|_| ()).map_err(|e| PublishError {
            topic: topic.to_owned(),
            retryable: true,
            source: Box::new(LinkFailed(e.to_string())),
        })
    }
}

/// A link's two halves.
pub type Link = (LinkTx, LinkRx);

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn probing_a_port_never_keeps_the_broker_from_listening_on_it() {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        assert!(!listening(addr), "nothing listens yet");

        // The broker binds while a probe holds the port, as it can while `start` waits.
        let held = probe(addr).expect("the probe binds a free port");
        let broker = tokio::net::TcpListener::bind(addr)
            .await
            .expect("the broker binds and listens beside a probe");
        drop(held);

        assert!(listening(addr), "the broker's listener is seen");
        wait_listening(addr).await.expect("and waited for");
        drop(broker);
        assert!(!listening(addr), "a closed listener is not seen");
    }
}
