//! Every read whose `append` returned survives kill -9 of the process, and the outbox reopens
//! cleanly (a torn last line is cut). The appending process is this test binary re-executed,
//! once with the agent's policy (`EveryAppend`: fsync before `append` returns) and once with
//! `OnDemand` (the data is in the kernel only).

use anpr_camera::outbox::{Outbox, OutboxConfig, SyncPolicy};
use anpr_protocol::{PlateRead, PlateReadBatch, ReadId, decode};
use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

fn cfg(sync: SyncPolicy) -> OutboxConfig {
    OutboxConfig {
        // Small segments so the kill also lands around segment rolls and drops nothing.
        segment_bytes: 16 * 1024,
        max_bytes: 64 * 1024 * 1024,
        sync,
        ..OutboxConfig::default()
    }
}

fn policy(name: &str) -> SyncPolicy {
    match name {
        "every-append" => SyncPolicy::EveryAppend,
        _ => SyncPolicy::OnDemand,
    }
}

/// Not a test: the appending process the kill test starts; runs only with `ANPR_OUTBOX_CHILD_DIR`.
#[test]
#[ignore = "helper process of the kill -9 test"]
fn appender_process_for_the_kill_test() {
    let Ok(dir) = std::env::var("ANPR_OUTBOX_CHILD_DIR") else {
        return;
    };
    let sync = policy(&std::env::var("ANPR_OUTBOX_CHILD_SYNC").unwrap_or_default());
    let mut ob = Outbox::open(dir.as_ref(), cfg(sync)).unwrap();
    for i in 0u64.. {
        ob.append(PlateRead {
            id: ReadId::parse(&format!("n{i:08}")).unwrap(),
            t: 1_764_086_400_000 + i,
            p: format!("AB{i:06}"),
            c: 90,
            img: None,
            bb: None,
        })
        .unwrap();
        println!("{i}");
    }
}

#[test]
fn every_acknowledged_append_survives_kill_9() {
    kill_and_check("on-demand", 5_000);
}

#[test]
fn every_acknowledged_append_survives_kill_9_with_fsync_on_every_append() {
    kill_and_check("every-append", 500);
}

/// Starts the appender with sync policy `sync`, kills it (SIGKILL) once it appended `at` reads
/// and checks the outbox it left.
fn kill_and_check(sync: &str, at: u64) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "appender_process_for_the_kill_test",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("ANPR_OUTBOX_CHILD_DIR", dir.path())
        .env("ANPR_OUTBOX_CHILD_SYNC", sync)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut last = None;
    for line in lines.by_ref() {
        if let Ok(i) = line.unwrap().trim().parse::<u64>() {
            last = Some(i);
            if i >= at {
                break;
            }
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // Whatever the child printed before it died was appended.
    for line in lines {
        if let Ok(i) = line.unwrap_or_default().trim().parse::<u64>() {
            last = Some(i);
        }
    }
    let acknowledged = last.expect("the child appended") + 1;

    let mut ob = Outbox::open(dir.path(), cfg(policy(sync))).unwrap();
    assert!(
        ob.depth() >= acknowledged,
        "{} < {acknowledged}",
        ob.depth()
    );
    assert!(
        ob.depth() <= acknowledged + 1,
        "at most the append in progress is extra"
    );
    let mut ids = Vec::new();
    while let Some(b) = ob.next_batch(u64::MAX / 2) {
        let batch: PlateReadBatch = decode(&b.payload).unwrap();
        ids.extend(batch.r.into_iter().map(|r| r.id.to_string()));
    }
    let expected: Vec<String> = (0..ob.depth()).map(|i| format!("n{i:08}")).collect();
    assert_eq!(ids, expected, "in order, none lost, none twice");
}
