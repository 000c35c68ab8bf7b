//! The session without a broker: events at explicit times, the actions checked.

use super::*;
use crate::config::tests::MINIMAL;
use anpr_protocol::FileStatusKind;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::ConnectReturnCode;

const TOPIC: &str = "cam-1/file/request";
const SHADOW: &str = "$aws/things/cam-1/shadow/name/config/update/delta";

fn file() -> Config {
    Config::parse(MINIMAL).unwrap()
}

fn settings() -> Settings {
    Settings::new(&file(), vec![TOPIC.into(), SHADOW.into()])
}

fn subscribed() -> String {
    format!("{TOPIC}\n{SHADOW}")
}

/// A session that booted at 0 without jitter and connected at `at`.
fn connected(at: Millis) -> Session {
    let mut s = Session::new(settings(), 0, false);
    assert_eq!(s.boot(0, 0.0), 0);
    s.connack(at, true, &subscribed(), 0.0);
    s
}

fn names(actions: &[Action]) -> Vec<&'static str> {
    actions
        .iter()
        .map(|a| match a {
            Action::Subscribe(_) => "subscribe",
            Action::RecordSubscriptions(_) => "record subscriptions",
            Action::ConfirmTrial => "confirm trial",
            Action::RollBack => "roll back",
            Action::PublishPresence => "presence",
            Action::PublishHealth => "health",
            Action::PublishStatus(_) => "status",
            Action::PublishSync => "sync",
            Action::GetShadow => "get shadow",
            Action::PublishReport(_) => "report",
            Action::PublishBatch => "batch",
            Action::AckBatch(_) => "ack batch",
            Action::RequeueBatch => "requeue batch",
            Action::MarkAnswered(_) => "answered",
            Action::Upload(_) => "upload",
            Action::Shadow { .. } => "shadow",
            Action::Tune(_) => "tune",
            Action::Reconnect(_) => "reconnect",
            Action::Ack(_) => "ack",
            Action::Note(_) => "note",
            Action::LinkDown(_) => "link down",
            Action::BackOff { .. } => "back off",
            Action::StopUploads => "stop uploads",
            Action::PublishOffline => "offline",
            Action::SyncOutbox => "sync outbox",
            Action::Disconnect => "disconnect",
        })
        .collect()
}

fn status(kind: FileStatusKind) -> FileStatus {
    FileStatus {
        id: RequestId::parse("01JDQ2Y7ZK8M3W5T0G9H4N6P2R").unwrap(),
        kind,
    }
}

fn granted() -> Vec<SubscribeReasonCode> {
    vec![SubscribeReasonCode::Success(QoS::AtLeastOnce); 2]
}

#[test]
fn a_new_session_subscribes_and_once_granted_records_it_then_asks_for_open_requests_and_the_shadow()
{
    let mut s = Session::new(settings(), 0, false);
    let a = s.connack(1000, false, "", 0.0);
    assert_eq!(
        names(&a),
        ["subscribe", "confirm trial", "presence", "health"]
    );
    assert!(matches!(&a[0], Action::Subscribe(t) if t == &[TOPIC, SHADOW]));
    assert!(s.is_connected());
    let a = s.suback(&granted());
    assert_eq!(names(&a), ["record subscriptions", "sync", "get shadow"]);
    assert!(matches!(&a[0], Action::RecordSubscriptions(r) if *r == subscribed()));
    // A second SUBACK (none requested) does nothing.
    assert!(s.suback(&granted()).is_empty());
}

#[test]
fn a_session_the_broker_kept_is_not_subscribed_again_unless_another_build_made_it() {
    let mut s = Session::new(settings(), 0, false);
    let a = s.connack(1000, true, &subscribed(), 0.0);
    assert_eq!(names(&a), ["confirm trial", "presence", "health"]);

    // An upgrade subscribes to more topics: subscribe, but the session kept its requests.
    let a = s.connack(2000, true, TOPIC, 0.0);
    assert_eq!(names(&a)[0], "subscribe");
    assert_eq!(
        names(&s.suback(&granted())),
        ["record subscriptions", "get shadow"]
    );
}

#[test]
fn a_refused_subscription_is_counted_and_not_recorded_so_the_next_start_subscribes_again() {
    let mut s = Session::new(settings(), 0, false);
    s.connack(1000, false, "", 0.0);
    let codes = [
        SubscribeReasonCode::Success(QoS::AtLeastOnce),
        SubscribeReasonCode::NotAuthorized,
    ];
    assert_eq!(names(&s.suback(&codes)), ["note", "sync", "get shadow"]);
}

#[test]
fn a_subscribe_that_could_not_be_queued_waits_for_no_suback() {
    let mut s = Session::new(settings(), 0, false);
    s.connack(1000, false, "", 0.0);
    s.subscribe_not_queued();
    assert!(s.suback(&granted()).is_empty());
}

#[test]
fn the_backlog_waits_for_its_random_drain_start_then_goes_one_batch_at_a_time() {
    let mut s = Session::new(settings(), 0, false);
    // Half of the 30 s drain start window.
    s.connack(1000, true, &subscribed(), 0.5);
    assert!(s.tick(1000).is_empty());
    assert_eq!(s.next_wake(), Some(16_000));
    assert_eq!(names(&s.tick(16_000)), ["batch"]);
    s.batch_queued(7);
    // None while the batch is in flight.
    assert_eq!(
        s.next_wake(),
        Some(6 * 3600 * 1000),
        "only the health report"
    );
    assert!(s.tick(60_000).is_empty());
    s.sent(1);
    let a = s.puback(60_500, 1, PubAckReason::Success);
    assert!(matches!(a[..], [Action::AckBatch(7)]));
    assert_eq!(names(&s.tick(60_500)), ["batch"]);
    // At most one a second, even when the outbox had nothing to send.
    assert!(s.tick(61_000).is_empty());
    assert_eq!(names(&s.tick(61_500)), ["batch"]);
}

#[test]
fn a_batch_with_no_subscriber_counts_as_delivered() {
    let mut s = connected(0);
    s.tick(0);
    s.batch_queued(3);
    s.sent(9);
    let a = s.puback(100, 9, PubAckReason::NoMatchingSubscribers);
    assert!(matches!(a[..], [Action::AckBatch(3)]));
}

#[test]
fn a_refused_batch_is_counted_put_back_and_held_for_five_minutes() {
    let mut s = connected(0);
    assert_eq!(names(&s.tick(0)), ["batch"]);
    s.batch_queued(1);
    s.sent(4);
    let a = s.puback(2000, 4, PubAckReason::NotAuthorized);
    assert_eq!(names(&a), ["note", "requeue batch"]);
    assert!(s.tick(2000 + REFUSED_BATCH_HOLD_MS - 1).is_empty());
    assert_eq!(names(&s.tick(2000 + REFUSED_BATCH_HOLD_MS)), ["batch"]);
}

#[test]
fn no_batch_goes_out_while_disconnected() {
    let mut s = Session::new(settings(), 0, false);
    assert!(s.tick(10_000).is_empty());
    assert_eq!(s.next_wake(), Some(6 * 3600 * 1000));
}

#[test]
fn a_final_status_is_recorded_answered_only_when_the_broker_delivered_it() {
    let mut s = connected(0);
    s.status_queued(&status(FileStatusKind::Uploading { pct: 50 }));
    s.status_queued(&status(FileStatusKind::Uploaded { size: 10 }));
    s.status_queued(&status(FileStatusKind::Uploaded { size: 10 }));
    s.sent(1);
    s.sent(2);
    s.sent(3);
    assert!(s.puback(10, 1, PubAckReason::Success).is_empty());
    let a = s.puback(10, 2, PubAckReason::Success);
    assert!(
        matches!(&a[..], [Action::MarkAnswered(id)] if id.as_str() == "01JDQ2Y7ZK8M3W5T0G9H4N6P2R")
    );
    // Refused: counted, published again at the next start (not answered).
    assert_eq!(
        names(&s.puback(10, 3, PubAckReason::NotAuthorized)),
        ["note"]
    );
    // An unknown packet id (a PUBACK for the last process's publish) is ignored.
    assert!(s.puback(10, 99, PubAckReason::Success).is_empty());
}

#[test]
fn a_lost_connection_backs_off_by_the_fleet_rules_and_is_reported_not_counted() {
    let mut s = connected(1000);
    let err = ConnectionError::Io(std::io::Error::other("reset"));
    // Dropped after 60 s up (stable): the first back-off, no jitter.
    let a = s.link_lost(61_000, &err, 0.0);
    assert!(!s.is_connected());
    assert!(
        matches!(&a[0], Action::LinkDown(n) if n == "mqtt: I/O: reset"),
        "{a:?}"
    );
    assert!(matches!(a[1], Action::BackOff { until: 61_000 }), "{a:?}");
    // Refused for the rate: at least a minute.
    let refused = ConnectionError::ConnectionRefused(ConnectReturnCode::ConnectionRateExceeded);
    let a = s.link_lost(62_000, &refused, 0.0);
    assert!(matches!(a[1], Action::BackOff { until: 122_000 }), "{a:?}");
}

#[test]
fn a_disconnect_that_says_slow_down_lengthens_the_back_off_of_the_connection_it_ends() {
    let mut s = connected(1000);
    s.disconnect(DisconnectReasonCode::ServerBusy);
    let err = ConnectionError::Io(std::io::Error::other("closed"));
    let a = s.link_lost(100_000, &err, 0.0);
    assert!(matches!(a[1], Action::BackOff { until: 160_000 }), "{a:?}");
    // The next connection starts without it.
    s.connack(200_000, true, &subscribed(), 0.0);
    let a = s.link_lost(300_000, &err, 0.0);
    assert!(matches!(a[1], Action::BackOff { until: 300_000 }), "{a:?}");
}

#[test]
fn the_health_report_goes_out_on_connect_and_on_its_interval_which_a_remote_change_restarts() {
    let six_hours = 6 * 3600 * 1000;
    let mut s = Session::new(settings(), 0, false);
    assert!(names(&s.connack(500, true, &subscribed(), 0.0)).contains(&"health"));
    assert!(!names(&s.tick(six_hours - 1)).contains(&"health"));
    assert!(names(&s.tick(six_hours)).contains(&"health"));
    assert!(!names(&s.tick(six_hours + 1000)).contains(&"health"));

    let mut hot = file();
    hot.health.interval_secs = 3600;
    let change = Change {
        hot: Some(hot),
        ..Change::default()
    };
    assert_eq!(names(&s.changed(six_hours + 1000, change)), ["tune"]);
    assert!(names(&s.tick(six_hours + 1000 + 3_600_000)).contains(&"health"));
}

#[test]
fn new_connection_settings_reconnect_once_the_ack_had_time_and_roll_back_without_a_connack() {
    let mut s = connected(0);
    let mut next = file();
    next.mqtt.port = 443;
    let change = Change {
        hot: Some(next.clone()),
        reconnect: Some(next),
        report: None,
    };
    assert_eq!(names(&s.changed(5000, change)), ["tune"]);
    let deadline = 5000 + 300_000;
    assert_eq!(s.trial_deadline(), Some(deadline));
    assert!(!names(&s.tick(5000 + RECONNECT_AFTER_MS - 1)).contains(&"reconnect"));
    let a = s.tick(5000 + RECONNECT_AFTER_MS);
    assert!(
        matches!(&a[..], [Action::Reconnect(c)] if c.mqtt.port == 443),
        "{a:?}"
    );
    // Two seconds at least between CONNECTs (the last one at 0 was long ago).
    assert_eq!(s.redialing(5200), 0);
    assert!(!s.is_connected());
    assert_eq!(s.next_wake(), Some(deadline));
    assert!(s.tick(deadline - 1).is_empty());
    assert_eq!(names(&s.tick(deadline)), ["roll back"]);
    assert_eq!(s.trial_deadline(), None);
    assert!(s.tick(deadline + 1).is_empty(), "once");
}

#[test]
fn a_connack_within_the_trial_confirms_it_and_its_deadline_no_longer_rolls_back() {
    let mut s = connected(0);
    let change = Change {
        reconnect: Some(file()),
        ..Change::default()
    };
    s.changed(5000, change);
    s.tick(5200);
    s.redialing(5200);
    let a = s.connack(9000, true, &subscribed(), 0.0);
    assert!(names(&a).contains(&"confirm trial"));
    assert_eq!(s.trial_deadline(), None);
    assert!(!names(&s.tick(400_000)).contains(&"roll back"));
}

#[test]
fn a_trial_left_by_the_last_stop_gets_a_new_deadline_that_a_back_off_cannot_outlast() {
    let mut s = Session::new(settings(), 500, true);
    assert_eq!(s.trial_deadline(), Some(300_500));
    assert_eq!(names(&s.tick(300_500)), ["roll back"]);
}

#[test]
fn a_report_from_a_change_without_reconnect_goes_out_at_once() {
    let mut s = connected(0);
    let mut report = Map::new();
    report.insert("health_interval_secs".into(), 3600.into());
    let change = Change {
        report: Some(report),
        ..Change::default()
    };
    assert_eq!(names(&s.changed(10, change)), ["report"]);
    assert_eq!(s.trial_deadline(), None);
}

#[test]
fn a_message_becomes_its_effects_then_its_acknowledgement_and_an_unknown_topic_is_counted_once() {
    let mut s = connected(0);
    let p = || Publish::new(TOPIC, QoS::AtLeastOnce, "{}", None);
    let effects = vec![
        Effect::Status(status(FileStatusKind::Uploading { pct: 0 })),
        Effect::Error("bad request".into()),
        Effect::Shadow {
            suffix: "update/delta",
            payload: b"{}".to_vec(),
        },
    ];
    let a = s.incoming(p(), Outcome::Handled(effects));
    assert_eq!(names(&a), ["status", "note", "shadow", "ack"]);
    let a = s.incoming(p(), Outcome::Unknown { first: true });
    assert_eq!(names(&a), ["note", "ack"]);
    let a = s.incoming(p(), Outcome::Unknown { first: false });
    assert_eq!(names(&a), ["ack"]);
}

#[test]
fn shutting_down_stops_uploads_then_says_goodbye_and_no_timer_fires_after() {
    let mut s = connected(0);
    assert_eq!(
        names(&s.shutdown()),
        ["stop uploads", "offline", "sync outbox", "disconnect"]
    );
    assert_eq!(s.next_wake(), None);
    assert!(s.tick(u64::MAX / 2).is_empty());
}
