//! A small fleet against the real broker stand-in (Mosquitto, TLS client certificates, the
//! IoT-like ACL) and moto's S3: every camera connects with its own certificate, plate reads
//! go through the agent's outbox and the plate-ingest handler, every file request reaches its
//! camera and comes back ready, and a broker restart behind the connect-rate limiter loses
//! nothing, not even the requests created while the broker was down.
//!
//! Needs `ANPR_MOTO_URL` and Mosquitto (`scripts/test` provides both).

use anpr_fleet_sim::profile::Profile;
use anpr_fleet_sim::run::{Options, run, table};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_busy_cameras_survive_a_broker_restart_behind_the_limiter() {
    anpr_test_support::init_crypto();
    let o = Options {
        cameras: 50,
        profile: Profile::Busy,
        compress: 200.0, // 11.6 reads/s per camera
        duration: Duration::from_secs(3),
        connect_rate: 25.0,
        file_bytes: 4096,
        // 5 requests a second for the fleet (the profile's would be 2.3)
        requests_per_sec: Some(5.0),
        reading_cameras: None,
        storm_down: Some(Duration::from_secs(1)),
        storm_requests: 10,
        progress: Duration::from_secs(2),
        timeout: Duration::from_secs(60),
    };
    let s = run(&o).await.expect("the run starts");
    eprintln!("{}", table(&s));
    assert_eq!(s.sessions_held, 50);
    assert!(
        s.subscribe_all_secs.is_some(),
        "every camera subscribed: {s:?}"
    );
    assert!(s.reads_generated > 500, "{s:?}");
    assert_eq!(
        s.reads_stored, s.reads_generated,
        "every read stored: {s:?}"
    );
    assert_eq!(s.reads_lost, 0);
    assert!(s.reads_written >= s.reads_stored);
    // Every request published reached its camera, was accepted, and became ready (object in
    // moto's S3 with the announced size); none failed.
    let [sent, accepted, ready, failed] = s.requests;
    assert!(sent >= 10, "{s:?}");
    assert_eq!(s.requests_received, sent, "every request received: {s:?}");
    assert_eq!((accepted, ready, failed), (sent, sent, 0), "{s:?}");
    let storm = s.storm.expect("storm ran");
    assert_eq!(storm.sessions_back, 50);
    assert!(storm.all_back_secs.is_some());
    // 50 cameras at 25 CONNECT/s (burst 25): the limiter must have turned some away
    assert!(storm.refused > 0, "{storm:?}");
    // requests created while the broker was down were delivered once it was back
    assert!(storm.requests_during_outage >= 10, "{storm:?}");
    assert_eq!(
        (storm.outage_requests_accepted, storm.outage_requests_ready),
        (storm.requests_during_outage, storm.requests_during_outage),
        "{storm:?}"
    );
}
