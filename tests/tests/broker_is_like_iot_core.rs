//! The test broker behaves like AWS IoT Core where our system relies on it: mutual TLS with
//! certificates only, per-camera topic isolation, QoS 1 queued for an offline persistent
//! session, also across a broker restart.

use anpr_test_support::broker::{Broker, CLOUD_IDENTITY};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Packet, PubAckReason, SubscribeReasonCode};
use rumqttc::v5::{AsyncClient, Event, EventLoop};
use std::time::Duration;

async fn next_packet(ev: &mut EventLoop) -> Packet {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ev.poll()).await {
            Ok(Ok(Event::Incoming(p))) => return p,
            Ok(Ok(Event::Outgoing(_))) => continue,
            Ok(Err(e)) => panic!("connection error: {e:?}"),
            Err(_) => panic!("no packet within 10 s"),
        }
    }
}

async fn connect(
    opts: rumqttc::v5::MqttOptions,
) -> (AsyncClient, EventLoop, rumqttc::v5::mqttbytes::v5::ConnAck) {
    let (c, mut ev) = AsyncClient::new(opts, 16);
    match next_packet(&mut ev).await {
        Packet::ConnAck(ack) => (c, ev, ack),
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

#[tokio::test]
async fn a_camera_cannot_receive_or_publish_on_another_cameras_topics() {
    let broker = Broker::start();
    let a = broker.identity("cam-a");
    let b = broker.identity("cam-b");
    let cloud = broker.identity(CLOUD_IDENTITY);
    let (client, mut ev, _) = connect(broker.v5_options(&a)).await;

    // Mosquitto 2.0 grants the SUBACK and enforces `read` at delivery (AWS IoT refuses the
    // subscribe itself); either way nothing of cam-b's may reach cam-a.
    client
        .subscribe("cam-b/file/request", QoS::AtLeastOnce)
        .await
        .unwrap();
    assert!(matches!(next_packet(&mut ev).await, Packet::SubAck(_)));
    client
        .subscribe("cam-a/file/request", QoS::AtLeastOnce)
        .await
        .unwrap();
    match next_packet(&mut ev).await {
        Packet::SubAck(s) => assert_eq!(
            s.return_codes,
            vec![SubscribeReasonCode::Success(QoS::AtLeastOnce)]
        ),
        other => panic!("{other:?}"),
    }
    {
        let (c, mut cev, _) = connect(broker.v5_options(&cloud)).await;
        c.publish("cam-b/file/request", QoS::AtLeastOnce, false, "for-b")
            .await
            .unwrap();
        assert!(matches!(next_packet(&mut cev).await, Packet::PubAck(_)));
        c.publish("cam-a/file/request", QoS::AtLeastOnce, false, "for-a")
            .await
            .unwrap();
        assert!(matches!(next_packet(&mut cev).await, Packet::PubAck(_)));
    }
    match next_packet(&mut ev).await {
        Packet::Publish(p) => {
            assert_eq!(&p.topic[..], b"cam-a/file/request");
            assert_eq!(
                &p.payload[..],
                b"for-a",
                "cam-a must not receive cam-b's message"
            );
        }
        other => panic!("{other:?}"),
    }
    let more = tokio::time::timeout(Duration::from_millis(500), next_packet(&mut ev)).await;
    assert!(more.is_err(), "nothing else may arrive: {more:?}");

    // Publishing under another camera's id is refused (PUBACK 135 under MQTT 5).
    client
        .publish("cam-b/file/status", QoS::AtLeastOnce, false, "{}")
        .await
        .unwrap();
    match next_packet(&mut ev).await {
        Packet::PubAck(p) => assert_eq!(p.reason, PubAckReason::NotAuthorized),
        other => panic!("{other:?}"),
    }
    // Its own status topic is allowed (no one listens here: "no matching subscribers").
    client
        .publish("cam-a/file/status", QoS::AtLeastOnce, false, "{}")
        .await
        .unwrap();
    match next_packet(&mut ev).await {
        Packet::PubAck(p) => assert!(
            matches!(
                p.reason,
                PubAckReason::Success | PubAckReason::NoMatchingSubscribers
            ),
            "{:?}",
            p.reason
        ),
        other => panic!("{other:?}"),
    }
    drop(b);
}

#[tokio::test]
async fn a_client_without_a_certificate_from_the_ca_is_refused() {
    let broker = Broker::start();
    let other_dir = tempfile_dir();
    let other_ca = anpr_test_support::broker::Pki::new(other_dir.path());
    anpr_test_support::init_crypto();
    let id = other_ca.issue("cam-a");
    let mut opts = rumqttc::v5::MqttOptions::new("cam-a", "localhost", broker.port);
    opts.set_transport(rumqttc::Transport::tls_with_config(
        rumqttc::TlsConfiguration::Simple {
            ca: broker.ca_pem(),
            alpn: None,
            client_auth: Some((id.cert_pem(), id.key_pem())),
        },
    ));
    let (_c, mut ev) = AsyncClient::new(opts, 4);
    let r = tokio::time::timeout(Duration::from_secs(10), ev.poll())
        .await
        .unwrap();
    assert!(r.is_err(), "connection must fail, got {r:?}");
}

fn tempfile_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[tokio::test]
async fn qos1_messages_for_an_offline_persistent_session_survive_a_broker_restart() {
    let mut broker = Broker::start();
    let cam = broker.identity("cam-p");
    let cloud = broker.identity(CLOUD_IDENTITY);

    // The camera subscribes with a persistent session, then goes away.
    let mut o = broker.v5_options(&cam);
    o.set_clean_start(false);
    o.set_connect_properties(rumqttc::v5::mqttbytes::v5::ConnectProperties {
        session_expiry_interval: Some(3600),
        ..Default::default()
    });
    {
        let (c, mut ev, _) = connect(o.clone()).await;
        c.subscribe("cam-p/file/request", QoS::AtLeastOnce)
            .await
            .unwrap();
        assert!(matches!(next_packet(&mut ev).await, Packet::SubAck(_)));
        c.disconnect().await.unwrap();
        let _ = tokio::time::timeout(Duration::from_secs(2), ev.poll()).await;
    }
    // The cloud publishes while it is offline.
    {
        let (c, mut ev, _) = connect(broker.v5_options(&cloud)).await;
        c.publish("cam-p/file/request", QoS::AtLeastOnce, false, "hello")
            .await
            .unwrap();
        match next_packet(&mut ev).await {
            Packet::PubAck(p) => assert_eq!(p.reason, PubAckReason::Success),
            other => panic!("{other:?}"),
        }
    }
    broker.restart();
    let (_c, mut ev, ack) = connect(o).await;
    assert!(ack.session_present, "the session survives the restart");
    match next_packet(&mut ev).await {
        Packet::Publish(p) => assert_eq!(&p.payload[..], b"hello"),
        other => panic!("{other:?}"),
    }
}
