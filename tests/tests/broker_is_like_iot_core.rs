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
    let other_ca =
        anpr_test_support::broker::Pki::open(other_dir.path(), "another CA").expect("other CA");
    anpr_test_support::init_crypto();
    let id = other_ca
        .issue("cam-a")
        .expect("certificate of the other CA");
    let mut opts = rumqttc::v5::MqttOptions::new("cam-a", "localhost", broker.port);
    opts.set_transport(rumqttc::Transport::tls_with_config(
        rumqttc::TlsConfiguration::Simple {
            ca: broker.ca_pem(),
            alpn: None,
            client_auth: Some((id.cert_pem().unwrap(), id.key_pem().unwrap())),
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

/// Polls `ev` until a PUBACK arrives, keeping the payloads of publishes seen meanwhile.
async fn until_puback(ev: &mut EventLoop, seen: &mut Vec<String>) -> PubAckReason {
    loop {
        match next_packet(ev).await {
            Packet::PubAck(a) => return a.reason,
            Packet::Publish(p) => seen.push(String::from_utf8_lossy(&p.payload).into_owned()),
            _ => {}
        }
    }
}

fn persistent(mut o: rumqttc::v5::MqttOptions) -> rumqttc::v5::MqttOptions {
    o.set_clean_start(false);
    o.set_connect_properties(rumqttc::v5::mqttbytes::v5::ConnectProperties {
        session_expiry_interval: Some(3600),
        ..Default::default()
    });
    o
}

/// The attacker holds camera A's real certificate and connects with camera B's client id,
/// asking to resume B's session: the broker gives it A's client id (as IoT Core refuses a
/// client id other than the thing name), so it neither gets B's queued request, nor knocks B
/// off, nor writes anything under B's topics.
#[tokio::test]
async fn a_camera_connecting_with_another_cameras_client_id_gets_nothing_of_it() {
    let broker = Broker::start();
    let a = broker.identity("cam-a");
    let b = broker.identity("cam-b");
    let cloud = broker.identity(CLOUD_IDENTITY);
    let b_opts = persistent(broker.v5_options(&b));
    {
        let (c, mut ev, _) = connect(b_opts.clone()).await;
        c.subscribe("cam-b/file/request", QoS::AtLeastOnce)
            .await
            .unwrap();
        assert!(matches!(next_packet(&mut ev).await, Packet::SubAck(_)));
        c.disconnect().await.unwrap();
        let _ = tokio::time::timeout(Duration::from_secs(2), ev.poll()).await;
    }
    // The cloud watches everything of cam-b's and queues a request for it while it is offline.
    let (cc, mut cev, _) = connect(broker.v5_options(&cloud)).await;
    cc.subscribe("cam-b/#", QoS::AtLeastOnce).await.unwrap();
    assert!(matches!(next_packet(&mut cev).await, Packet::SubAck(_)));
    cc.subscribe("$aws/rules/+/cam-b/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    assert!(matches!(next_packet(&mut cev).await, Packet::SubAck(_)));
    let mut cloud_saw = Vec::new();
    cc.publish(
        "cam-b/file/request",
        QoS::AtLeastOnce,
        false,
        "queued-for-b",
    )
    .await
    .unwrap();
    assert_eq!(
        until_puback(&mut cev, &mut cloud_saw).await,
        PubAckReason::Success
    );

    let mut attacker = persistent(broker.v5_options(&a));
    attacker.set_client_id("cam-b".to_owned());
    let (ac, mut aev, ack) = connect(attacker.clone()).await;
    assert!(
        !ack.session_present,
        "cam-b's session must not be handed to cam-a's certificate"
    );
    ac.subscribe("cam-b/file/request", QoS::AtLeastOnce)
        .await
        .unwrap();
    assert!(matches!(next_packet(&mut aev).await, Packet::SubAck(_)));
    let mut attacker_saw = Vec::new();
    for topic in [
        "cam-b/file/status",
        "cam-b/presence",
        "$aws/rules/anpr_plate_reads/cam-b/plates",
        "$aws/things/cam-b/shadow/update",
    ] {
        ac.publish(topic, QoS::AtLeastOnce, false, "evil")
            .await
            .unwrap();
        assert_eq!(
            until_puback(&mut aev, &mut attacker_saw).await,
            PubAckReason::NotAuthorized,
            "{topic}"
        );
    }

    // The real cam-b comes back while the attacker is connected: its session and its queued
    // request are there.
    let (bc, mut bev, back) = connect(b_opts).await;
    assert!(back.session_present, "cam-b's session survived");
    match next_packet(&mut bev).await {
        Packet::Publish(p) => assert_eq!(&p.payload[..], b"queued-for-b"),
        other => panic!("{other:?}"),
    }
    // A second impersonation while cam-b is online does not take its connection over: a
    // request published afterwards reaches cam-b on the same connection.
    // (It resumes the session of cam-a that the first attempt made: its own.)
    let (_ac2, _aev2, _) = connect(attacker).await;
    cc.publish(
        "cam-b/file/request",
        QoS::AtLeastOnce,
        false,
        "second-for-b",
    )
    .await
    .unwrap();
    assert_eq!(
        until_puback(&mut cev, &mut cloud_saw).await,
        PubAckReason::Success
    );
    match next_packet(&mut bev).await {
        Packet::Publish(p) => assert_eq!(&p.payload[..], b"second-for-b"),
        other => panic!("cam-b lost its connection: {other:?}"),
    }
    // cam-b's own status reaches the cloud: had any of the attacker's earlier publishes been
    // let through, it would have arrived before this one.
    bc.publish("cam-b/file/status", QoS::AtLeastOnce, false, "from-b")
        .await
        .unwrap();
    assert_eq!(
        until_puback(&mut bev, &mut Vec::new()).await,
        PubAckReason::Success
    );
    while !cloud_saw.iter().any(|p| p == "from-b") {
        if let Packet::Publish(p) = next_packet(&mut cev).await {
            cloud_saw.push(String::from_utf8_lossy(&p.payload).into_owned());
        }
    }
    assert!(
        !cloud_saw.iter().any(|p| p == "evil"),
        "the attacker wrote under cam-b: {cloud_saw:?}"
    );
    // And nothing of cam-b's reached the attacker's first connection (polled last; the second
    // attempt, being cam-a too, took it over, which ends it).
    while let Ok(Ok(ev)) = tokio::time::timeout(Duration::from_millis(200), aev.poll()).await {
        if let Event::Incoming(Packet::Publish(p)) = ev {
            attacker_saw.push(String::from_utf8_lossy(&p.payload).into_owned());
        }
    }
    assert!(attacker_saw.is_empty(), "{attacker_saw:?}");
}
