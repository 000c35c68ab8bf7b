//! A small fleet against the real broker stand-in (Mosquitto, TLS client certificates, the
//! IoT-like ACL) and moto's S3: every camera connects with its own certificate, plate reads
//! go through the agent's outbox and the plate-ingest handler, file requests come back ready,
//! and a broker restart behind the connect-rate limiter loses nothing.
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
        compress: 200.0, // 11.6 reads/s and a request every 22 s per camera
        duration: Duration::from_secs(3),
        connect_rate: 25.0,
        file_bytes: 4096,
        storm_down: Some(Duration::from_secs(1)),
        progress: Duration::from_secs(2),
        timeout: Duration::from_secs(60),
    };
    let s = run(&o).await.expect("the run starts");
    eprintln!("{}", table(&s));
    assert_eq!(s.sessions_held, 50);
    assert!(s.reads_generated > 500, "{s:?}");
    assert_eq!(
        s.reads_stored, s.reads_generated,
        "every read stored: {s:?}"
    );
    assert_eq!(s.reads_lost, 0);
    assert!(s.reads_written >= s.reads_stored);
    // Every request a camera accepted became ready (object in S3, size checked), none failed.
    // Not every published request reached its camera: an open finding, docs/capacity.md.
    let [sent, accepted, ready, failed] = s.requests;
    assert!(sent > 0 && accepted > 0, "{s:?}");
    assert_eq!((ready, failed), (accepted, 0), "{s:?}");
    assert_eq!(s.requests_received, accepted, "{s:?}");
    let storm = s.storm.expect("storm ran");
    assert_eq!(storm.sessions_back, 50);
    assert!(storm.all_back_secs.is_some());
    // 50 cameras at 25 CONNECT/s (burst 25): the limiter must have turned some away
    assert!(storm.refused > 0, "{storm:?}");
}
