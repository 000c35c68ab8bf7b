//! Golden fixtures: one per message. A change to the wire format breaks these tests; update a
//! fixture only together with a schema version decision.

use anpr_protocol::codec::Message;
use anpr_protocol::*;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn req_id() -> RequestId {
    RequestId::parse("01JDQ2Y7ZK8M3W5T0G9H4N6P2R").unwrap()
}

fn assert_golden<T: Message + PartialEq + std::fmt::Debug>(name: &str, msg: T) {
    let bytes = fixture(name);
    assert_eq!(
        String::from_utf8(encode(&msg).unwrap()).unwrap(),
        String::from_utf8(bytes.clone()).unwrap(),
        "encoding of {name} changed"
    );
    assert_eq!(
        decode::<T>(&bytes).unwrap(),
        msg,
        "decoding of {name} changed"
    );
}

#[test]
fn a_file_request_matches_its_golden_fixture() {
    assert_golden(
        "file_request.json",
        FileRequest {
            id: req_id(),
            file: FileName::parse("clips/2026-11-25/gate 1.mp4").unwrap(),
            at: 1_764_086_400,
            exp: 1_764_172_800,
        },
    );
}

#[test]
fn every_file_status_matches_its_golden_fixture() {
    let cases = [
        ("file_status_accepted.json", FileStatusKind::Accepted),
        (
            "file_status_uploading.json",
            FileStatusKind::Uploading { pct: 40 },
        ),
        (
            "file_status_uploaded.json",
            FileStatusKind::Uploaded { size: 52_428_800 },
        ),
        (
            "file_status_failed.json",
            FileStatusKind::Failed {
                reason: ReasonCode::NotFound,
            },
        ),
        (
            "file_status_rejected.json",
            FileStatusKind::Rejected {
                reason: ReasonCode::ForbiddenPath,
            },
        ),
        ("file_status_expired.json", FileStatusKind::Expired),
    ];
    for (name, kind) in cases {
        assert_golden(name, FileStatus { id: req_id(), kind });
    }
}

#[test]
fn a_plate_read_batch_matches_its_golden_fixture() {
    assert_golden(
        "plate_read_batch.json",
        PlateReadBatch {
            r: vec![
                PlateRead {
                    id: ReadId::parse("0kq3h7x2m1").unwrap(),
                    t: 1_764_086_400_123,
                    p: "AB123CD".into(),
                    c: 97,
                    img: Some(FileName::parse("reads/0kq3h7x2m1.jpg").unwrap()),
                    bb: Some([412, 300, 120, 40]),
                },
                PlateRead {
                    id: ReadId::parse("0kq3h7x2m2").unwrap(),
                    t: 1_764_086_401_500,
                    p: "7CID930".into(),
                    c: 88,
                    img: None,
                    bb: None,
                },
            ],
        },
    );
}

#[test]
fn a_presence_notification_matches_its_golden_fixture() {
    assert_golden(
        "presence_notification.json",
        anpr_protocol::notify::PresenceNotification {
            camera_id: CameraId::parse("123456").unwrap(),
            online: false,
            last_seen_ms: 1_764_086_460_123,
        },
    );
}

#[test]
fn a_ready_notification_matches_its_golden_fixture() {
    assert_golden(
        "notification_ready.json",
        Notification {
            request_id: req_id(),
            camera_id: CameraId::parse("123456").unwrap(),
            file: "clips/a.mp4".into(),
            state: RequestState::Ready,
            progress: None,
            size: Some(52_428_800),
            url: Some("https://bucket.s3.amazonaws.com/media/123456/01JDQ2Y7ZK8M3W5T0G9H4N6P2R/clips/a.mp4?X-Amz-Signature=abc".into()),
            reason: None,
            at: 1_764_086_460,
        },
    );
}

#[test]
fn a_health_report_matches_its_golden_fixture() {
    assert_golden(
        "health.json",
        Health {
            up: 3600,
            ver: "0.1.0".into(),
            ob: 12,
            df: 1200,
            err: None,
            errs: 0,
            feed: FeedCounts::default(),
        },
    );
}

#[test]
fn a_health_report_after_errors_carries_their_count_and_the_last_one() {
    assert_golden(
        "health_errors.json",
        Health {
            up: 3600,
            ver: "0.1.0".into(),
            ob: 12,
            df: 1200,
            err: Some("mqtt: I/O: connection reset by peer".into()),
            errs: 3,
            feed: FeedCounts::default(),
        },
    );
}

/// Schema v1 still: the frame feed's counts are optional fields (a reader that does not know
/// them skips them), each left out when zero.
#[test]
fn a_health_report_of_a_frame_feed_that_skipped_frames_carries_the_counts_that_are_not_zero() {
    assert_golden(
        "health_feed.json",
        Health {
            up: 3600,
            ver: "0.1.0".into(),
            ob: 12,
            df: 1200,
            err: None,
            errs: 0,
            feed: FeedCounts {
                still: 5400,
                dropped: 12,
                corrupt: 0,
                failed: 0,
            },
        },
    );
    // A report without them (an agent without a feed, or before they existed): all zero.
    assert_eq!(
        decode::<Health>(&fixture("health.json")).unwrap().feed,
        FeedCounts::default()
    );
}

#[test]
fn the_camera_messages_stay_small() {
    // The camera pays for every byte: keep the common messages compact.
    assert!(fixture("file_request.json").len() < 128);
    // 66 bytes today, 26 of them the request id.
    assert!(fixture("file_status_uploading.json").len() < 72);
    assert!(fixture("health.json").len() < 64);
    // A busy day of a frame feed: 24 more bytes.
    assert!(fixture("health_feed.json").len() < 88);
}

#[test]
fn a_presence_message_matches_its_golden_fixture() {
    assert_golden("presence_offline.json", Presence { on: false });
}

#[test]
fn a_sync_message_matches_its_golden_fixture_and_is_seven_bytes() {
    assert_golden("file_sync.json", FileSync {});
    assert_eq!(fixture("file_sync.json").len(), 7);
}
