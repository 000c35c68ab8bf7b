//! The agent end to end, in this process, against the real stand-ins: Mosquitto configured
//! like AWS IoT Core (TLS client certificates, per-camera ACL, persistence), the IoT
//! credentials provider stand-in (mutual TLS), moto's S3, and counting/cuttable loopback
//! proxies in front of the broker and S3. Run through `scripts/test` (it starts moto).

mod common;

use anpr_protocol::{FileStatusKind, ReasonCode};
use common::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_published_while_the_camera_is_offline_is_served_when_it_reconnects() {
    let stack = Stack::new("cam-off").await;
    let body = stack.media_file("clips/gate 1.mp4", 300_000);
    let mut cloud = stack.cloud().await;

    // First run: the agent subscribes with a persistent session, then goes offline.
    let agent = Running::start(stack.config());
    cloud.wait_health(20).await;
    agent.stop().await;

    // Returns once the broker has queued it for the offline session (its PUBACK).
    cloud
        .request("01OFFLINE0000000000000000A", "clips/gate 1.mp4")
        .await;

    let agent = Running::start(stack.config());
    let done = cloud
        .wait_status("01OFFLINE0000000000000000A", 30, is_uploaded)
        .await;
    assert_eq!(done, FileStatusKind::Uploaded { size: 300_000 });
    let key = stack.key("01OFFLINE0000000000000000A", "clips/gate 1.mp4");
    assert_eq!(
        stack.object(&key).await.as_deref(),
        Some(&body[..]),
        "byte-identical in S3"
    );
    assert!(
        stack.creds.granted() >= 1,
        "credentials came from the provider"
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_request_delivered_again_uploads_once_also_across_a_restart() {
    let stack = Stack::new("cam-dup").await;
    let body = stack.media_file("big.bin", 12 * MIB);
    let mut cloud = stack.cloud().await;
    let agent = Running::start(stack.config());
    cloud.wait_health(20).await;
    let before = stack.s3_proxy.up_bytes();

    let id = "01DUPLICATE000000000000000";
    let now = anpr_protocol::clock::now_secs();
    let payload = format!(
        r#"{{"v":1,"id":"{id}","file":"big.bin","at":{now},"exp":{}}}"#,
        now + 600
    );
    cloud.request_raw(payload.clone()).await;
    cloud.request_raw(payload.clone()).await;
    cloud.wait_status(id, 60, is_uploaded).await;
    // A third copy after completion: the final status is repeated, nothing uploaded. The
    // repeated status is the agent's answer to that copy: anything it would upload is counted
    // by then (the status follows the upload).
    cloud.request_raw(payload.clone()).await;
    let payload_again = payload;
    cloud
        .wait_until(20, "the final status repeated", |c| {
            c.statuses_of(id).iter().filter(|k| is_uploaded(k)).count() >= 2
        })
        .await;

    let sent = stack.s3_proxy.up_bytes() - before;
    assert!(
        sent < (body.len() + body.len() / 2) as u64,
        "uploaded once: {sent} bytes sent for a {} byte file",
        body.len()
    );
    let st = cloud.statuses_of(id);
    assert_eq!(
        st.iter()
            .filter(|k| **k == FileStatusKind::Accepted)
            .count(),
        1,
        "{st:?}"
    );
    assert_eq!(
        st.iter().filter(|k| is_uploaded(k)).count(),
        2,
        "repeated once: {st:?}"
    );
    assert!(
        st.iter()
            .any(|k| matches!(k, FileStatusKind::Uploading { .. })),
        "progress reported: {st:?}"
    );
    assert!(st.len() <= 7, "progress is coarse, not per chunk: {st:?}");
    assert_eq!(
        stack.object(&stack.key(id, "big.bin")).await.as_deref(),
        Some(&body[..])
    );

    // A fourth copy after the agent restarted (a new process state; only the journal on disk
    // remembers the request): answered from the journal, nothing uploaded.
    agent.stop().await;
    let sent_before_restart = stack.s3_proxy.up_bytes();
    let agent = Running::start(stack.config());
    cloud.wait_health(20).await;
    cloud.request_raw(payload_again).await;
    cloud
        .wait_until(20, "the final status repeated after the restart", |c| {
            c.statuses_of(id).iter().filter(|k| is_uploaded(k)).count() >= 3
        })
        .await;
    assert_eq!(
        stack.s3_proxy.up_bytes(),
        sent_before_restart,
        "nothing uploaded again"
    );
    let st = cloud.statuses_of(id);
    assert_eq!(
        st.iter()
            .filter(|k| **k == FileStatusKind::Accepted)
            .count(),
        1,
        "not accepted again: {st:?}"
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_cut_at_half_by_a_dropped_link_resumes_and_resends_at_most_one_part() {
    let stack = Stack::new("cam-cut").await;
    let size = 30 * MIB;
    let body = stack.media_file("long.mp4", size);
    let mut cloud = stack.cloud().await;
    let agent = Running::start(stack.config());
    cloud.wait_health(20).await;

    let before = stack.s3_proxy.up_bytes();
    stack.s3_proxy.cut_when_up_reaches(before + size as u64 / 2);
    let id = "01CUTLINK00000000000000000";
    cloud.request(id, "long.mp4").await;
    // The link comes back a little later.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !stack.s3_proxy.is_cut() {
        assert!(
            std::time::Instant::now() < deadline,
            "the upload never reached half"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stack.s3_proxy.restore();

    cloud.wait_status(id, 120, is_uploaded).await;
    let sent = stack.s3_proxy.up_bytes() - before;
    let part = 5 * MIB as u64;
    assert!(
        sent <= size as u64 + part + 256 * 1024,
        "at most one part re-sent: {sent} bytes for {size}"
    );
    assert_eq!(
        stack.object(&stack.key(id, "long.mp4")).await.as_deref(),
        Some(&body[..])
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_recovers_from_a_broker_restart_without_operator_action() {
    let mut stack = Stack::new("cam-rst").await;
    stack.media_file("a.jpg", 1000);
    let mut first_cloud = stack.cloud().await;
    let agent = Running::start(stack.config());
    first_cloud.wait_health(20).await;
    drop(first_cloud);
    stack.broker.restart();
    let mut cloud = stack.cloud().await;
    cloud.request("01RESTART00000000000000000", "a.jpg").await;
    cloud
        .wait_status("01RESTART00000000000000000", 60, is_uploaded)
        .await;
    assert!(
        stack.mqtt_proxy.connections() >= 2,
        "the agent reconnected by itself"
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_malformed_request_is_refused_with_a_status_and_the_agent_keeps_running() {
    let stack = Stack::new("cam-bad").await;
    stack.media_file("ok.jpg", 10);
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), b"s").unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("secret"),
        stack.media.path().join("esc.jpg"),
    )
    .unwrap();
    std::os::unix::fs::symlink("/etc", stack.media.path().join("etc")).unwrap();
    std::fs::create_dir(stack.media.path().join("dir")).unwrap();
    assert!(
        std::process::Command::new("mkfifo")
            .arg(stack.media.path().join("fifo"))
            .status()
            .unwrap()
            .success()
    );
    let mut cloud = stack.cloud().await;
    let agent = Running::start(stack.config());
    cloud.wait_health(20).await;

    let now = anpr_protocol::clock::now_secs();
    let req = |id: &str, file: &str| {
        format!(
            r#"{{"v":1,"id":"{id}","file":"{file}","at":{now},"exp":{}}}"#,
            now + 600
        )
    };
    let huge = "x".repeat(100_000);
    // Payloads that cannot be answered (no usable id): dropped, logged.
    for p in [
        b"not json".to_vec(),
        b"\xff\xfe\x00garbage".to_vec(),
        b"[]".to_vec(),
        br#"{"v":1}"#.to_vec(),
        format!(r#"{{"v":1,"id":"{huge}","file":"a"}}"#).into_bytes(),
        br#"{"v":1,"id":"../../x","file":"a","at":1,"exp":2}"#.to_vec(),
    ] {
        cloud.request_raw(p).await;
    }
    // Payloads with a valid id: each answered.
    let cases: Vec<(&str, String, FileStatusKind)> = vec![
        (
            "01BAD0TRAVERSAL00000000000",
            req("01BAD0TRAVERSAL00000000000", "../../etc/passwd"),
            FileStatusKind::Rejected {
                reason: ReasonCode::ForbiddenPath,
            },
        ),
        (
            "01BAD0ABSOLUTE000000000000",
            req("01BAD0ABSOLUTE000000000000", "/etc/passwd"),
            FileStatusKind::Rejected {
                reason: ReasonCode::ForbiddenPath,
            },
        ),
        (
            "01BAD0SYMLINK0000000000000",
            req("01BAD0SYMLINK0000000000000", "esc.jpg"),
            FileStatusKind::Rejected {
                reason: ReasonCode::ForbiddenPath,
            },
        ),
        (
            "01BAD0SYMDIR00000000000000",
            req("01BAD0SYMDIR00000000000000", "etc/passwd"),
            FileStatusKind::Rejected {
                reason: ReasonCode::ForbiddenPath,
            },
        ),
        (
            "01BAD0DIR00000000000000000",
            req("01BAD0DIR00000000000000000", "dir"),
            FileStatusKind::Rejected {
                reason: ReasonCode::NotRegularFile,
            },
        ),
        (
            "01BAD0FIFO0000000000000000",
            req("01BAD0FIFO0000000000000000", "fifo"),
            FileStatusKind::Rejected {
                reason: ReasonCode::NotRegularFile,
            },
        ),
        (
            "01BAD0MISSING0000000000000",
            req("01BAD0MISSING0000000000000", "nope.jpg"),
            FileStatusKind::Failed {
                reason: ReasonCode::NotFound,
            },
        ),
        (
            "01BAD0TYPES000000000000000",
            r#"{"v":1,"id":"01BAD0TYPES000000000000000","file":7,"at":"x","exp":null}"#.to_owned(),
            FileStatusKind::Rejected {
                reason: ReasonCode::BadRequest,
            },
        ),
        (
            "01BAD0HUGENAME000000000000",
            req("01BAD0HUGENAME000000000000", &huge),
            FileStatusKind::Rejected {
                reason: ReasonCode::BadRequest,
            },
        ),
        (
            "01BAD0CONTROL0000000000000",
            req("01BAD0CONTROL0000000000000", "a\\u0000b"),
            FileStatusKind::Rejected {
                reason: ReasonCode::BadRequest,
            },
        ),
        (
            "01BAD0VERSION0000000000000",
            r#"{"v":99,"id":"01BAD0VERSION0000000000000","file":"ok.jpg","at":1,"exp":2}"#
                .to_owned(),
            FileStatusKind::Rejected {
                reason: ReasonCode::BadRequest,
            },
        ),
        (
            "01BAD0EXPIRED0000000000000",
            r#"{"v":1,"id":"01BAD0EXPIRED0000000000000","file":"ok.jpg","at":1,"exp":2}"#
                .to_owned(),
            FileStatusKind::Expired,
        ),
    ];
    for (_, p, _) in &cases {
        cloud.request_raw(p.clone()).await;
    }
    for (id, _, want) in &cases {
        let got = cloud.wait_status(id, 20, |_| true).await;
        let got = if got == FileStatusKind::Accepted {
            cloud
                .wait_status(id, 20, |k| *k != FileStatusKind::Accepted)
                .await
        } else {
            got
        };
        assert_eq!(&got, want, "{id}");
    }
    // Still alive and serving.
    cloud.request("01BAD0STILLALIVE0000000000", "ok.jpg").await;
    cloud
        .wait_status("01BAD0STILLALIVE0000000000", 20, is_uploaded)
        .await;
    assert!(agent.is_running());
    let outside_keys = stack
        .s3
        .list_objects_v2()
        .bucket(&stack.bucket)
        .send()
        .await
        .unwrap()
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect::<Vec<_>>();
    assert_eq!(
        outside_keys,
        vec![stack.key("01BAD0STILLALIVE0000000000", "ok.jpg")]
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_cannot_reach_another_cameras_topics_or_credentials() {
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::mqttbytes::v5::{Packet, PubAckReason, SubscribeReasonCode};
    let stack = Stack::new("cam-a").await;
    stack.broker.identity("cam-b");
    // The agent's own session options, used to try what the agent never does.
    let mut opts = anpr_camera::mqtt::options(&stack.config()).unwrap();
    opts.set_manual_acks(false);
    let (c, mut ev) = rumqttc::v5::AsyncClient::new(opts, 8);
    c.subscribe("cam-b/file/request", QoS::AtLeastOnce)
        .await
        .unwrap();
    c.publish("cam-b/file/status", QoS::AtLeastOnce, false, "{}")
        .await
        .unwrap();
    let (mut suback, mut puback) = (None, None);
    while suback.is_none() || puback.is_none() {
        match tokio::time::timeout(Duration::from_secs(10), ev.poll())
            .await
            .unwrap()
            .unwrap()
        {
            rumqttc::v5::Event::Incoming(Packet::SubAck(s)) => suback = Some(s.return_codes),
            rumqttc::v5::Event::Incoming(Packet::PubAck(p)) => puback = Some(p.reason),
            _ => {}
        }
    }
    // Mosquitto 2.0 (like IoT Core for some policies) may grant the SUBSCRIBE yet deliver
    // nothing the read ACL denies: what matters is that nothing of cam-b's ever arrives.
    let refused = suback.unwrap() == vec![SubscribeReasonCode::NotAuthorized];
    let cloud = stack.cloud().await;
    cloud
        .client
        .publish(
            "cam-b/file/request",
            QoS::AtLeastOnce,
            false,
            "for cam-b only",
        )
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while let Ok(ev) = tokio::time::timeout_at(deadline, ev.poll()).await {
        if let Ok(rumqttc::v5::Event::Incoming(Packet::Publish(p))) = ev {
            panic!(
                "cam-a received {:?} (subscribe refused: {refused})",
                p.topic
            );
        }
    }
    assert_eq!(puback.unwrap(), PubAckReason::NotAuthorized);

    // Credentials for another thing with this camera's certificate are refused.
    let ca = std::fs::read(stack.broker.pki.ca_path()).unwrap();
    let other = anpr_camera::creds::IotCredentials::new(
        "localhost",
        stack.creds.port,
        "anpr-camera",
        "cam-b",
        &ca,
        &stack.cam.cert_pem().unwrap(),
        &stack.cam.key_pem().unwrap(),
    )
    .unwrap();
    let e = other.fetch().await.unwrap_err();
    assert!(
        matches!(
            e,
            anpr_camera::creds::CredsError::Status { status: 403, .. }
        ),
        "{e}"
    );
    let own = anpr_camera::creds::IotCredentials::new(
        "localhost",
        stack.creds.port,
        "anpr-camera",
        "cam-a",
        &ca,
        &stack.cam.cert_pem().unwrap(),
        &stack.cam.key_pem().unwrap(),
    )
    .unwrap();
    assert_eq!(own.fetch().await.unwrap().access_key_id(), "testing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plate_reads_in_the_outbox_are_published_in_a_batch_and_leave_it_on_puback() {
    use anpr_protocol::{PlateRead, PlateReadBatch, ReadId};
    let stack = Stack::new("cam-reads").await;
    let cfg = stack.config();
    {
        // Reads queued while the agent was not running (found on disk at open: due at once).
        let ob = anpr_camera::agent::open_outbox(&cfg).unwrap();
        let mut ob = ob.lock().unwrap();
        for i in 0..3u64 {
            ob.append(PlateRead {
                id: ReadId::parse(&format!("read{i}")).unwrap(),
                t: 1_764_086_400_000 + i,
                p: format!("AB{i}CD"),
                c: 90,
                img: None,
                bb: None,
            })
            .unwrap();
        }
    }
    let mut cloud = stack.cloud().await;
    let outbox = anpr_camera::agent::open_outbox(&cfg).unwrap();
    assert_eq!(outbox.lock().unwrap().depth(), 3);
    let (stop, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(
        anpr_camera::agent::Agent::builder(cfg)
            .outbox(outbox.clone())
            .run(anpr_camera::agent::Shutdown::new(rx)),
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while cloud.plates.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no plate batch published"
        );
        cloud.drain(1).await;
    }
    let batch: PlateReadBatch = anpr_protocol::decode(&cloud.plates[0]).unwrap();
    assert_eq!(batch.r.len(), 3);
    assert_eq!(batch.r[2].p, "AB2CD");
    while outbox.lock().unwrap().depth() != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "batch not acknowledged"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(cloud.plates.len(), 1, "one batch, sent once");
    stop.send(true).unwrap();
    task.await.unwrap().unwrap();
}
