//! Measurements of the plate read outbox and its wire format (not assertions of speed): bytes
//! per read on the wire, reads per 128 KB message, append throughput under each sync policy
//! and disk bytes per read. Run:
//!
//! `cargo test -p anpr-camera --release --test outbox_measure -- --ignored --nocapture`

use anpr_camera::outbox::{Outbox, OutboxConfig, SyncPolicy, new_read_id};
use anpr_protocol::{FileName, MAX_MQTT_PAYLOAD, PlateRead, PlateReadBatch, encode};
use std::time::Instant;

const NOW: u64 = 1_764_086_400_000;

/// A typical read: 7-character plate, confidence, and optionally an image name and box.
fn read(i: u64, with_media: bool) -> PlateRead {
    let id = new_read_id();
    PlateRead {
        img: with_media.then(|| FileName::parse(&format!("reads/{id}.jpg")).expect("valid")),
        bb: with_media.then_some([1412, 730, 118, 36]),
        id,
        t: NOW + i * 1234,
        p: format!("AB{:03}CD", i % 1000),
        c: 90 + (i % 10) as u8,
    }
}

#[test]
#[ignore = "measurement: run with --ignored --nocapture"]
fn measure_wire_bytes_per_read_and_reads_per_message() {
    for with_media in [false, true] {
        // As many reads as fit in one 128 KiB message.
        let mut r = Vec::new();
        let mut i = 0;
        loop {
            r.push(read(i, with_media));
            if encode(&PlateReadBatch { r: r.clone() }).is_err() {
                r.pop();
                break;
            }
            i += 1;
        }
        let full = encode(&PlateReadBatch { r: r.clone() }).expect("fits");
        let one = encode(&PlateReadBatch {
            r: vec![read(0, with_media)],
        })
        .expect("fits");
        println!(
            "wire (media refs: {with_media}): {:.1} bytes/read in a full message, {} reads per {} B message ({} B used); a 1-read message is {} B",
            full.len() as f64 / r.len() as f64,
            r.len(),
            MAX_MQTT_PAYLOAD,
            full.len(),
            one.len()
        );
    }
}

#[test]
#[ignore = "measurement: run with --ignored --nocapture"]
fn measure_outbox_append_throughput_and_disk_bytes_per_read() {
    for (policy, n) in [
        (SyncPolicy::EveryAppend, 2_000u64),
        (SyncPolicy::EveryN(100), 50_000),
        (SyncPolicy::OnDemand, 50_000),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = OutboxConfig {
            sync: policy,
            ..OutboxConfig::default()
        };
        let mut ob = Outbox::open(dir.path(), cfg).expect("open");
        let reads: Vec<_> = (0..n).map(|i| read(i, true)).collect();
        let start = Instant::now();
        for r in reads {
            ob.append(r).expect("append");
        }
        ob.sync().expect("sync");
        let secs = start.elapsed().as_secs_f64();
        println!(
            "outbox {policy:?}: {n} reads in {secs:.3} s = {:.0} reads/s; {:.1} disk bytes/read",
            n as f64 / secs,
            ob.disk_bytes() as f64 / n as f64
        );
    }
}
